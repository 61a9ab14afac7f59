// TLS on a migration's channels (node:tls): what each side gives, and the two openings, each with
// the same timeout as the rest of a handshake. TLS runs under the pagewire handshake, which still
// authenticates both sides with the shared secret when one is set.
import { createServer, type ConnectionOptions, type Server as TlsServer, type TLSSocket } from "node:tls";
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

/** Source side: how to open a TLS connection to `host` with these certificates (the name checked is the host's, unless it is an address). */
export function tlsConnectOptions(host: string, port: number, o: TlsOptions): ConnectionOptions {
  return { host, port, cert: o.cert, key: o.key, ca: o.ca, servername: /^[\d.]+$|:/.test(host) ? undefined : host };
}
