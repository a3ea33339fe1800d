//! The machines API (`/compute/...`), the devnet's stand-in for `compute.x402layer.cc`: the
//! catalog ([`catalog`]), prepaid credits (`credits`), API keys (`api_keys`) and instances
//! on a simulated provider ([`instances`]).
//!
//! Paid endpoints charge through the shared [`Cashier`] and only then act; errors are
//! `{"error": "..."}` with the right 4xx, and a rejected request changes nothing.

mod api_keys;
pub mod catalog;
mod credits;
pub mod instances;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use x402_core::Clock;

use crate::auth::Authenticator;
use crate::clock::SharedRandom;
use crate::faults::Faults;
use crate::payment::Cashier;
use crate::store::Store;

/// Everything the machines handlers share.
pub struct Machines {
    store: Arc<Store>,
    auth: Arc<Authenticator>,
    cashier: Arc<Cashier>,
    clock: Arc<dyn Clock + Send + Sync>,
    random: SharedRandom,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for Machines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machines").finish_non_exhaustive()
    }
}

impl Machines {
    /// The machines service over the shared ledger, auth, cashier and faults.
    pub fn new(
        store: Arc<Store>,
        auth: Arc<Authenticator>,
        cashier: Arc<Cashier>,
        clock: Arc<dyn Clock + Send + Sync>,
        random: SharedRandom,
        faults: Arc<Faults>,
    ) -> Machines {
        Machines {
            store,
            auth,
            cashier,
            clock,
            random,
            faults,
        }
    }

    /// The machines API routes. The paid ones answer a `payment-identifier` retry from the
    /// stored answer.
    pub fn routes(self: Arc<Self>) -> Router {
        let paid = crate::payment::paid_layers(
            Router::new()
                .route("/compute/credits/topup", post(credits::topup))
                .route("/compute/provision", post(instances::provision))
                .route("/compute/instances/{id}/extend", post(instances::extend)),
            self.faults.clone(),
            self.store.clone(),
        )
        .with_state(self.clone());
        Router::new()
            .route("/compute/plans", get(catalog::plans))
            .route("/compute/regions", get(catalog::regions))
            .route("/compute/os", get(catalog::os))
            .route("/compute/credits/balance", get(credits::balance))
            .route(
                "/compute/api-keys",
                post(api_keys::create).get(api_keys::list),
            )
            .route("/compute/api-keys/{id}", delete(api_keys::revoke))
            .route("/compute/instances", get(instances::list))
            .route(
                "/compute/instances/{id}",
                get(instances::details).delete(instances::destroy),
            )
            .route(
                "/compute/instances/{id}/password",
                post(instances::password),
            )
            .route("/compute/instances/{id}/resize", post(instances::resize))
            .with_state(self)
            .merge(paid)
    }
}
