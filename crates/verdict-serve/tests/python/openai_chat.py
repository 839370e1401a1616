"""Calls a running Verdict server with the official OpenAI client: a JSON-schema chat
completion, the same streamed, and one with log-probabilities. Prints one JSON line with what
came back, for the Rust test to check."""

import json
import sys

from openai import OpenAI

base_url, api_key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)

schema = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["sfw", "nsfw"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string", "maxLength": 40},
    },
    "required": ["label", "confidence", "reason"],
    "additionalProperties": False,
}
response_format = {
    "type": "json_schema",
    "json_schema": {"name": "verdict", "schema": schema, "strict": True},
}
messages = [
    {"role": "system", "content": "Moderate content."},
    {"role": "user", "content": "Is this safe?"},
]

whole = client.chat.completions.create(
    model="tiny_a",
    messages=messages,
    response_format=response_format,
    logprobs=True,
    top_logprobs=2,
)
stream = client.chat.completions.create(
    model="tiny_a", messages=messages, response_format=response_format, stream=True
)
streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

try:
    client.chat.completions.create(
        model="tiny_a", messages=messages, response_format={"type": "json_object"}
    )
    refused = None
except Exception as error:  # the client raises BadRequestError on 400
    refused = {"status": getattr(error, "status_code", None), "code": getattr(error, "code", None)}

print(
    json.dumps(
        {
            "content": whole.choices[0].message.content,
            "finish_reason": whole.choices[0].finish_reason,
            "logprob_text": bytes(
                b for t in whole.choices[0].logprobs.content for b in t.bytes
            ).decode("utf-8"),
            "top_counts": [len(t.top_logprobs) for t in whole.choices[0].logprobs.content],
            "usage": whole.usage.total_tokens,
            "streamed": streamed,
            "refused": refused,
        }
    )
)
