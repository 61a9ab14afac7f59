// The handshake of one channel, both sides (docs/PROTOCOL.md, "Handshake"):
//   source → preamble, hello          destination → challenge (server nonce)
//   source → auth (MAC [+ offer])     destination → accept (MAC) or refuse (reason)
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Connection } from "./connection.js";
import type { TokenBucket } from "./token-bucket.js";
import { tlsConnectOptions, type TlsOptions } from "./tls.js";
import { FrameType, MAC_BYTES, NONCE_BYTES } from "../wire/constants.js";
import { WireError, asWireError } from "../wire/errors.js";
import {
  encodePreamble, encodeHello, decodeHello, encodeAuth, decodeAuth, encodeOffer, decodeOffer, decodeFixed, decodeFailure,
  type Hello, type Offer,
} from "../wire/messages.js";
import { frame } from "../wire/frame.js";
import { nonce, proof, sameMac, sessionKey } from "../wire/auth.js";

/** A refusal or error frame from the peer, as an error on this side. */
export function peerFailure(side: "destination" | "source") {
  return (payload: Uint8Array): WireError => {
    const f = decodeFailure(payload, `${side}'s failure frame`);
    return new WireError(f.reason, `the ${side} refused: ${f.message}`);
  };
}

export interface ChannelTarget {
  host: string;
  port: number;
  secret: string;
  migrationId: Uint8Array;
  channelIndex: number;
  channelCount: number;
  /** Sent on channel 0 only. */
  offer?: Offer;
  bucket?: TokenBucket;
  /** How long to wait for an answer, and for stalled writes to move, ms. Default 30,000. */
  timeoutMs?: number;
  /** Over TLS, with these certificates. */
  tls?: TlsOptions;
}

/** A TCP connection to host:port, or a TLS one once the destination's certificate checked out. */
function openSocket(host: string, port: number, timeoutMs: number, tls: TlsOptions | undefined): Promise<Socket> {
  const over = tls ? " over TLS" : "";
  return new Promise((resolve, reject) => {
    const socket = tls ? tlsConnect(tlsConnectOptions(host, port, tls)) : netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new WireError("connection", `no connection${over} to ${host}:${port} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once(tls ? "secureConnect" : "connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint =
        error.code === "ECONNREFUSED" ? ": is a destination (pagewire listen) running there?"
        : tls && /certificate|self.signed|verify/i.test(error.message) ? ": give the CA that signed the destination's certificate (--tls-ca)"
        : "";
      reject(new WireError("connection", `cannot connect to ${host}:${port}${over} (${error.code ?? error.message})${hint}`));
    });
  });
}

/** An authenticated channel, and the migration's session key its handshake yields (see wire/auth.ts). */
export interface Handshaken {
  conn: Connection;
  key: Uint8Array;
}

/** Source side: connects one channel and authenticates both ways. */
export async function connectChannel(t: ChannelTarget): Promise<Handshaken> {
  const timeoutMs = t.timeoutMs ?? 30_000;
  const conn = new Connection(await openSocket(t.host, t.port, timeoutMs, t.tls), { bucket: t.bucket, stallTimeoutMs: timeoutMs });
  conn.failureFrame = FrameType.cancel;
  try {
    const clientNonce = nonce();
    const hello = frame(FrameType.hello, encodeHello({ migrationId: t.migrationId, channelIndex: t.channelIndex, channelCount: t.channelCount, clientNonce }));
    const opening = new Uint8Array(8 + hello.length);
    opening.set(encodePreamble());
    opening.set(hello, 8);
    await conn.write(opening);
    const refused = peerFailure("destination");
    const serverNonce = decodeFixed(await conn.expect(FrameType.challenge, refused, timeoutMs), NONCE_BYTES, "challenge");
    const offerBytes = t.offer ? encodeOffer(t.offer) : undefined;
    const mac = proof(t.secret, "source", serverNonce, clientNonce, t.migrationId, t.channelIndex, offerBytes);
    await conn.send(FrameType.auth, encodeAuth({ mac, offerBytes }));
    const theirs = decodeFixed(await conn.expect(FrameType.accept, refused, timeoutMs), MAC_BYTES, "accept");
    if (!sameMac(theirs, proof(t.secret, "destination", serverNonce, clientNonce, t.migrationId, t.channelIndex))) {
      throw new WireError("auth", `the destination at ${t.host}:${t.port} could not prove it knows the shared secret`);
    }
    return { conn, key: sessionKey(t.secret, serverNonce, clientNonce, t.migrationId) };
  } catch (error) {
    conn.fail(asWireError(error), true);
    // Under TLS 1.3 a destination checks a client certificate after the source's handshake ended: a refusal is a closed connection.
    if (t.tls && error instanceof WireError && error.reason === "connection") error.message += " (over TLS: does the destination trust this source's certificate? --tls-cert, --tls-key)";
    throw error;
  }
}

export interface Admission {
  hello: Hello;
  offer?: Offer;
  /** The session key (used on channel 0's completion). */
  key: Uint8Array;
}

/**
 * Destination side: reads a channel's hello and auth, checks the MAC, asks `admit` whether the
 * channel may join (it throws a WireError to refuse), then accepts. A refusal reaches the source
 * as a refuse frame with the reason, and the connection closes.
 */
export async function acceptChannel(conn: Connection, secret: string, admit: (a: Admission) => Promise<void> | void, timeoutMs = 30_000): Promise<Admission> {
  conn.failureFrame = FrameType.refuse;
  const fromSource = peerFailure("source");
  try {
    const hello = decodeHello(await conn.expect(FrameType.hello, fromSource, timeoutMs));
    const serverNonce = nonce();
    await conn.send(FrameType.challenge, serverNonce);
    const auth = decodeAuth(await conn.expect(FrameType.auth, fromSource, timeoutMs), hello.channelIndex === 0);
    // The MAC first: nothing of the offer is read before the source proved it knows the secret.
    if (!sameMac(auth.mac, proof(secret, "source", serverNonce, hello.clientNonce, hello.migrationId, hello.channelIndex, auth.offerBytes))) {
      throw new WireError("auth", "authentication failed: the source's secret differs from this destination's (--secret)");
    }
    const offer = auth.offerBytes ? decodeOffer(auth.offerBytes) : undefined;
    const admission = { hello, offer, key: sessionKey(secret, serverNonce, hello.clientNonce, hello.migrationId) };
    await admit(admission);
    await conn.send(FrameType.accept, proof(secret, "destination", serverNonce, hello.clientNonce, hello.migrationId, hello.channelIndex));
    return admission;
  } catch (error) {
    conn.fail(asWireError(error), true);
    throw error;
  }
}
