// Challenge-response authentication by a shared secret: each side proves it knows the secret
// with an HMAC-SHA256 over fresh nonces from both sides; the secret never crosses the wire.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { NONCE_BYTES, MIGRATION_ID_BYTES } from "./constants.js";

export function nonce(): Uint8Array {
  return new Uint8Array(randomBytes(NONCE_BYTES));
}

export function newMigrationId(): Uint8Array {
  return new Uint8Array(randomBytes(MIGRATION_ID_BYTES));
}

/**
 * The MAC one side sends: `role` keeps the source's proof from being replayed as the
 * destination's; on channel 0 it covers the offer's bytes too, so that nobody without the secret
 * can change what the destination allocates for.
 */
export function proof(secret: string, role: "source" | "destination", serverNonce: Uint8Array, clientNonce: Uint8Array, migrationId: Uint8Array, channel: number, offer: Uint8Array = new Uint8Array(0)): Uint8Array {
  const mac = createHmac("sha256", secret);
  mac.update(`pagewire/2 ${role}`);
  mac.update(serverNonce);
  mac.update(clientNonce);
  mac.update(migrationId);
  mac.update(Uint8Array.of(channel & 0xff, channel >>> 8));
  mac.update(offer);
  return new Uint8Array(mac.digest());
}

/**
 * The migration's key, from channel 0's handshake: both sides derive it, nobody else can without
 * the secret. It authenticates the completion and its confirmation, so that a relay on the path
 * can neither change pages unnoticed (it cannot forge the source's digests) nor forge `done`.
 */
export function sessionKey(secret: string, serverNonce: Uint8Array, clientNonce: Uint8Array, migrationId: Uint8Array): Uint8Array {
  const mac = createHmac("sha256", secret);
  mac.update("pagewire/2 session key");
  mac.update(serverNonce);
  mac.update(clientNonce);
  mac.update(migrationId);
  return new Uint8Array(mac.digest());
}

/** HMAC-SHA256 under the session key of a label and the message's bytes. */
export function tag(key: Uint8Array, label: string, ...parts: Uint8Array[]): Uint8Array {
  const mac = createHmac("sha256", key);
  mac.update(label);
  for (const p of parts) mac.update(p);
  return new Uint8Array(mac.digest());
}

export function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
