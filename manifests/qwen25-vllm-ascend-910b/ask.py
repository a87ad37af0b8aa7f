"""One chat completion from the vLLM server of this environment, printed: proof that it serves.

Settings from the environment (the `ask` entrypoint's params): PORT, SERVED_MODEL_NAME, PROMPT,
MAX_TOKENS. Standard library only: the vllm-ascend image has Python but not always curl.
"""

import json
import os
import sys
import urllib.error
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/v1/chat/completions"
body = {
    "model": os.environ["SERVED_MODEL_NAME"],
    "messages": [{"role": "user", "content": os.environ.get("PROMPT", "你好")}],
    "max_tokens": int(os.environ.get("MAX_TOKENS", "128")),
    "temperature": 0,
}
request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=300) as answer:
        reply = json.load(answer)
except (urllib.error.URLError, OSError) as exc:
    sys.exit(f"{url}: {exc} (is `envctl exec serve --detach` running? `envctl status` lists it)")
print(reply["choices"][0]["message"]["content"])
