// TLS on a migration's channels (node:tls): what each side gives, and the two openings, each with
// the same timeout as the rest of a handshake. TLS runs under the pagewire handshake, which still
// authenticates both sides with the shared secret when one is set.
import { connect as tlsConnect, createServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import type { Socket } from "node:net";
import { WireError } from "../wire/errors.js";
import { PagewireError } from "../errors.js";

/** PEM text (or its bytes) of the certificates and key a side uses. */
export interface TlsOptions {
  /**
   * This side's certificate chain. The destination must have one; a source gives one for mutual
   * TLS (when the destination asks for client certificates).
   */
  cert?: string | Buffer;
  key?: string | Buffer;
  /**
   * The certificates to trust. Source: the destination's certificate must chain to one of these
   * (default: the system's CAs). Destination: given, every source must present a certificate
   * that chains to one of these (mutual TLS); not given, sources present none.
   */
  ca?: string | Buffer;
}

/**
 * The destination's TLS server (it listens in place of a plain TCP one): its certificate, client
 * certificates required and checked against `ca` when given, and the handshake's timeout.
 */
export function createTlsServer(o: TlsOptions, timeoutMs: number, onSecure: (socket: TLSSocket) => void): TlsServer {
  if (!o.cert || !o.key) throw new PagewireError("EOPTION", "TLS on a destination needs its certificate and key (--tls-cert, --tls-key)");
  const mutual = o.ca !== undefined;
  return createServer({ cert: o.cert, key: o.key, ca: o.ca, requestCert: mutual, rejectUnauthorized: mutual, handshakeTimeout: timeoutMs }, onSecure);
}

/** Source side: a TLS connection to host:port, once the destination's certificate is verified. */
export function dialTls(host: string, port: number, o: TlsOptions, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host, port, cert: o.cert, key: o.key, ca: o.ca, servername: /^[\d.]+$|:/.test(host) ? undefined : host });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new WireError("connection", `${host}:${port}: no TLS handshake within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = error.code === "ECONNREFUSED" ? ": is a destination (pagewire listen) running there?" : /certificate|self.signed|verify/i.test(error.message) ? ": give the CA that signed the destination's certificate (--tls-ca)" : "";
      reject(new WireError("connection", `cannot connect to ${host}:${port} over TLS (${error.code ?? error.message})${hint}`));
    });
  });
}
