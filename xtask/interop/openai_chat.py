"""The official OpenAI Python SDK streams a plain chat through the devnet grid by base_url
alone (run by the grid end-to-end test in crates/cli/tests).

usage: openai_chat.py BASE_URL API_KEY MODEL PROMPT EXPECTED_TEXT PROMPT_TOKENS COMPLETION_TOKENS
Prints one JSON line with what it read; exits non-zero when anything differs. `-` for the
text and token counts (a real model's answer) checks the structure only: some text, usage
with both counts above zero and at most max_tokens completion tokens.
"""

import json
import sys

from openai import OpenAI


def main() -> int:
    base, key, model, prompt, expected, prompt_tokens, completion_tokens = sys.argv[1:8]
    client = OpenAI(base_url=base.rstrip("/") + "/v1", api_key=key, max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=64,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, roles, finish = [], None, set(), None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.add(choice.delta.role)
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    got = "".join(text)
    print(json.dumps({"text": got, "usage": usage.model_dump() if usage else None,
                      "roles": sorted(roles), "finish_reason": finish}))
    problems = []
    exact = expected != "-"
    if exact and got != expected:
        problems.append(f"text {got!r} != {expected!r}")
    if not exact and not got.strip():
        problems.append("no text")
    if usage is None:
        problems.append("no usage chunk")
    elif not exact:
        if usage.prompt_tokens <= 0 or not 0 < usage.completion_tokens <= 64:
            problems.append(f"usage {usage.prompt_tokens}+{usage.completion_tokens}")
    elif (usage.prompt_tokens, usage.completion_tokens) != (int(prompt_tokens), int(completion_tokens)):
        problems.append(f"usage {usage.prompt_tokens}+{usage.completion_tokens} != {prompt_tokens}+{completion_tokens}")
    if roles != {"assistant"}:
        problems.append(f"roles {roles}")
    if finish not in (("stop",) if exact else ("stop", "length")):
        problems.append(f"finish_reason {finish!r}")
    # Non-streaming too, and the model list.
    whole = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=64
    )
    whole_text = whole.choices[0].message.content
    if (whole_text != expected) if exact else not (whole_text or "").strip():
        problems.append(f"non-stream text {whole.choices[0].message.content!r}")
    if model not in [m.id for m in client.models.list()]:
        problems.append("model not listed by /v1/models")
    for problem in problems:
        print("openai SDK:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
