// The playground's conversation as code a person can run: the exact request, as curl and Python.
// Neither holds the page's own credential: both read the key from CLOUDGPT_API_KEY.

export const KEY_VARIABLE = "CLOUDGPT_API_KEY";

/** A JSON value as a Python literal (a JSON string's escapes read the same in Python). */
export function pythonLiteral(value, indent = "") {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value !== "object") return JSON.stringify(value);
  const inner = `${indent}    `;
  const items = Array.isArray(value)
    ? value.map((item) => pythonLiteral(item, inner))
    : Object.entries(value).map(([name, item]) => `${JSON.stringify(name)}: ${pythonLiteral(item, inner)}`);
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return items.length ? `${open}\n${items.map((item) => `${inner}${item},`).join("\n")}\n${indent}${close}` : `${open}${close}`;
}

/** POST <base>/chat/completions with `body`, as a curl command (the JSON in single quotes, quotes escaped). */
export function curlCode(base, body) {
  const json = JSON.stringify(body, null, 2).replaceAll("'", "'\\''");
  return `curl -N ${base}/chat/completions \\
  -H "Authorization: Bearer $${KEY_VARIABLE}" \\
  -H "Content-Type: application/json" \\
  -d '${json}'`;
}

/** The same request through the OpenAI Python SDK, printing the answer as it streams. */
export function pythonCode(base, body) {
  return `import os

from openai import OpenAI

client = OpenAI(base_url=${JSON.stringify(base)}, api_key=os.environ["${KEY_VARIABLE}"])
request = ${pythonLiteral(body)}
for chunk in client.chat.completions.create(**request):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()`;
}
