// Compiles DevnetToken.sol with the pinned solc-js and OpenZeppelin from npm, offline.
// Usage: node compile.js <node_modules dir> <output json>
// `cargo xtask contracts` runs this; `cargo xtask contracts --check` compares with the committed artifact.
const fs = require("fs");
const path = require("path");

const [modules, output] = process.argv.slice(2);
const solc = require(path.join(modules, "solc"));
const source = fs.readFileSync(path.join(__dirname, "DevnetToken.sol"), "utf8");
const input = {
  language: "Solidity",
  sources: { "DevnetToken.sol": { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
function findImports(importPath) {
  const file = path.join(modules, importPath);
  if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  return { error: `not found: ${importPath}` };
}
const result = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (result.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const contract = result.contracts["DevnetToken.sol"].DevnetToken;
const artifact = {
  compiler: solc.version(),
  abi: contract.abi,
  bytecode: "0x" + contract.evm.bytecode.object,
};
fs.writeFileSync(output, JSON.stringify(artifact, null, 1) + "\n");
console.log(`wrote ${output} (${contract.evm.bytecode.object.length / 2} bytes of init code)`);
