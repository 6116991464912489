// Preloaded into Portkey's gateway by bench/peers.py.
import net from "node:net";

// Its server listens on every interface: a listen() without a host is bound to 127.0.0.1 instead.
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, ...rest) {
  if (typeof port === "number" && typeof host !== "string") {
    return listen.call(this, port, "127.0.0.1", ...[host, ...rest].filter((arg) => arg !== undefined));
  }
  return listen.call(this, port, host, ...rest);
};

// @hono/node-server 1.19 keeps a fetched response's headers when Portkey re-wraps a stream as
// `new Response(body, fetched)`, and those are immutable: Portkey's own headers cannot be added
// and every streamed request is a 500. Fetched responses are handed over with headers of their own.
const nativeFetch = globalThis.fetch;
const NativeResponse = globalThis.Response;
globalThis.fetch = async (...args) => {
  const fetched = await nativeFetch(...args);
  const { status, statusText } = fetched;
  return new NativeResponse(fetched.body, { status, statusText, headers: new Headers(fetched.headers) });
};
