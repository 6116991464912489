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
