// What an embedder gives a Listener, and what it gets for each migration received.
import type { Region } from "../memory/region.js";
import type { TlsOptions } from "../transport/tls.js";

export interface DestinationHooks {
  /**
   * Start the guest with its device state. After pre-copy or stop-and-copy its memory is complete
   * and verified. Under post-copy this is called at the switch-over, with pages still arriving:
   * the guest must check presence before touching memory (the region's presence area, see
   * src/migration/presence.ts; the workload kernels do it per chunk of work).
   */
  resume?(deviceState: Uint8Array, regions: Region[]): void | Promise<void>;
  /**
   * Check the device state as wire input before anything runs on it, and throw to refuse it (a
   * PagewireError ESTATE travels as reason state): called before done is sent, so a refusal
   * leaves the guest running at the source; under post-copy, before the guest starts here.
   */
  checkDeviceState?(deviceState: Uint8Array, regions: Region[]): void;
}

export interface ListenerOptions {
  /** Shared with the source; never sent. Default: empty (no protection). */
  secret?: string;
  /** Memory to receive into; offers must match it. Default: allocate per offer. */
  regions?: Region[];
  /** Touch memory allocated for an offer before accepting it, as QEMU's -mem-prealloc does. Default true. */
  prefault?: boolean;
  /** The regions handed in hold only zeros (fresh from Region.create): skip checking before the first migration. */
  zeroed?: boolean;
  hooks?: DestinationHooks;
  /** Handshake timeout, ms. Default 30,000. */
  timeoutMs?: number;
  /**
   * A migration whose source sends nothing for this long fails, ms, and its memory (and a fixed
   * memory's lock) is released: a source that stalled or vanished. Default 60,000.
   */
  idleTimeoutMs?: number;
  /**
   * Most guest memory, in bytes, the migrations received at once may make this listener allocate;
   * an offer beyond it is refused as busy. Default three quarters of this host's memory.
   */
  maxMemoryBytes?: number;
  /** Most migrations received at once; more are refused as busy. Default 8. */
  maxSessions?: number;
  /**
   * Allow listen() on an address other than loopback without a secret, where anyone who can reach
   * it may migrate into this process. Default false: refused.
   */
  insecure?: boolean;
  /**
   * Every channel over TLS: this destination's `cert` and `key`, and with `ca` every source must
   * present a certificate signed by it (mutual TLS).
   */
  tls?: TlsOptions;
}

export interface Received {
  migrationId: string;
  regions: Region[];
  deviceState: Uint8Array;
  stats: {
    "total-time": number;
    "verify-time": number;
    /** Bytes of memory the completion hashed (the rest was hashed as it arrived): what the pause paid for here. */
    "verify-hashed-bytes": number;
    /** Milliseconds the digest threads spent on this migration's proof, added up over the threads (see MigrationStats). */
    "digest-thread-time": number;
    received: number;
    pages: number;
    rounds: number;
    channels: number;
    "device-state-bytes": number;
    /** Post-copy: times the guest found a page missing, page requests sent, and ms the guest spent blocked. */
    "postcopy-faults": number;
    "postcopy-requests": number;
    "postcopy-blocked-ms": number;
  };
  /**
   * Gives the regions back to the listener, which may receive a later migration of the same
   * shape into them (zeroed first). Call it once the guest is done with them, and do not touch
   * them after. A listener's fixed memory (options.regions) takes no other migration until this
   * is called: offers meanwhile are refused as busy. Memory never released is left to the
   * garbage collector, which may not run soon.
   */
  release(): void;
}

/** A migration being received, as Listener.active() reports it. */
export interface SessionProgress {
  migrationId: string;
  /** The source's address (its channel 0). */
  peer: string;
  /** Bytes received on every channel so far, and pages applied. */
  received: number;
  pages: number;
  /** Rounds every channel has finished. */
  rounds: number;
  startedAt: number;
}

/** What a session hands its listener: a Received but for release(), which the listener adds. */
export type SessionResult = Omit<Received, "release">;

/** The events a Listener emits, with their arguments (Node's typed EventEmitter map). */
export interface ListenerEvents {
  /** A migration was admitted (its channel 0 authenticated and its offer accepted). */
  session: [migrationId: string];
  completed: [received: Received];
  failed: [error: Error];
  /** A channel of a migration ended a round (it is held until every channel has). */
  "round-end": [event: { migrationId: string; channel: number; round: number }];
  /** A connection was refused during its handshake. */
  refused: [error: Error];
}
