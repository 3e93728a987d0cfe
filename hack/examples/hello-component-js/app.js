// A wasi:http/proxy component in JavaScript (componentize-js: StarlingMonkey, SpiderMonkey in Wasm).
// It answers with a greeting that names the method, the path and query, the x-name header and how
// many requests this instance has served (1 each time, as each request gets a fresh instance), and
// echoes the request body when there is one; ?status=NNN picks the response's status.
let served = 0;

addEventListener("fetch", (event) => event.respondWith(answer(event.request)));

async function answer(request) {
  served += 1;
  const url = new URL(request.url);
  const name = request.headers.get("x-name") ?? "-";
  const body = request.method === "GET" ? "" : await request.text();
  const status = Number(url.searchParams.get("status") ?? 200);
  const text = `Hello from JS, ${request.method} ${url.pathname}${url.search} x-name=${name} served=${served}\n`;
  return new Response(text + body, { status, headers: { "content-type": "text/plain" } });
}
