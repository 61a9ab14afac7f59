// What an embedder gives a Source, and what it hears back: options, hooks into its guest, and
// the typed events.
import type { Policy } from "../policy/policy.js";
import type { RoundReport } from "./stats.js";
import type { TlsOptions } from "../transport/tls.js";

export interface SourceHooks {
  /** Stops the guest at a safe point (no write half done). Called once, when iterating stops. */
  pause?(): void | Promise<void>;
  /** Lets the guest run on here again: the migration failed after pause(). */
  resume?(): void | Promise<void>;
  /** The embedder's CPU and device state, taken after pause(); at most 256 MiB. */
  deviceState?(): Uint8Array | Promise<Uint8Array>;
  /** Called before every dirty sync (the paused one too): where an ExternalMemory flushes. */
  beforeSync?(): void;
  /**
   * Slow the guest down: its threads should sleep this fraction of the time (0 to 0.99; 0 to run
   * freely again). Policies with auto-converge call it when the guest dirties faster than the link sends.
   */
  throttle?(fraction: number): void;
}

export interface SourceOptions {
  host: string;
  port: number;
  /** Shared with the destination; never sent. Default: empty (no protection). */
  secret?: string;
  /** TCP channels to spread pages over (1 to 16). Default 1. */
  channels?: number;
  /** When to stop iterating. Default precopy() with a 300 ms downtime limit. */
  policy?: Policy;
  /** LZ4-compress pages that shrink. */
  compress?: boolean;
  /** Send re-sent pages as deltas (the regions need a delta cache: deltaCacheBytes). */
  delta?: boolean;
  /**
   * Use free-page hints: pages the guest marked in the region's free bitmap travel as zero,
   * unread, and are zeroed here at the pause (the guest said their content does not matter).
   */
  freePageHints?: boolean;
  /**
   * Find changed pages by hash as well as by the dirty log: for memory written by code that never
   * marks pages dirty (a program compiled by someone else). Each sync hashes every page and
   * compares it with what was sent; the regions need hashTracking in their layout.
   */
  trackByHash?: boolean;
  /**
   * Hash all memory for the digest at the pause, as a migration did before the digest was kept
   * current: for a write barrier under suspicion. By default the chunks hashed while the guest
   * ran are trusted until the dirty log says a page of theirs changed, so a write the barrier
   * never marked after its chunk was hashed goes unseen (the destination's side, which marks what
   * it writes itself, is checked either way). Implied by trackByHash.
   */
  fullDigest?: boolean;
  /**
   * Run channels 1 to N-1 each on a worker thread of its own (its socket, its handshake, its
   * writes), as QEMU's multifd threads; when the regions are laid out with a lane per channel
   * (`lanes` ≥ channels) the threads encode too and channel 0 carries control frames only. The
   * main thread keeps the syncs and the plan. Default false.
   */
  channelThreads?: boolean;
  /** Cap on the rate, in bytes per second, over all channels (emulates a slower link). */
  bandwidth?: number;
  hooks?: SourceHooks;
  /** Aborting cancels the migration: the destination is told, the guest resumes here. */
  signal?: AbortSignal;
  /**
   * How long to wait for the destination, ms: to answer during setup, to take what was sent (a
   * destination that stops reading), and to confirm the digest. Default 30,000. On any of them
   * the migration fails and the guest resumes here.
   */
  timeoutMs?: number;
  /**
   * Every channel over TLS: `ca` to verify the destination's certificate (default: the system's
   * CAs), `cert` and `key` for a destination that asks for client certificates (mutual TLS).
   */
  tls?: TlsOptions;
  /**
   * Reconnect this many times when a connection breaks before the completion: the migration
   * continues from what the destination holds, resending only the pages of the rounds it had not
   * acknowledged (post-copy, once the guest runs at the destination: only the pages it still
   * lacks). Default 0.
   */
  reconnect?: number;
  /** Pause before the n-th reconnection: n times this, ms. Default 250. */
  reconnectDelayMs?: number;
  /**
   * Send a keepalive on channel 0 after this long without a write, ms, so that a destination's
   * idle timeout does not end a migration whose source is busy in a hook. Default 1,000.
   */
  keepaliveMs?: number;
}

export interface Progress {
  phase: "live" | "paused" | "postcopy";
  round: number;
  /** Pages still to send in this round. */
  remainingPages: number;
  sentPages: number;
  transferred: number;
  /** Megabytes per second over the last progress interval. */
  rate: number;
  /** How long the pause would last if it began now, at the measured bandwidth. */
  expectedDowntimeMs: number;
}

/** The events a Source emits, with their arguments (Node's typed EventEmitter map). */
export interface SourceEvents {
  /** About every 100 ms while pages move, and after each dirty sync. */
  progress: [progress: Progress];
  /** A round has been sent (every channel ended it). */
  round: [report: RoundReport];
  /** The destination applied every frame of a round. */
  ack: [round: number];
  /**
   * Post-copy's point of no return: the destination may resume the guest from now on, and a
   * failure or cancellation loses it (QEMU refuses migrate_cancel in postcopy-active).
   */
  switchover: [];
  /** A broken connection was replaced and the migration goes on; the pages of unacknowledged rounds are sent again. */
  reconnected: [event: { attempt: number; /** The round the break cut short. */ round: number; cause: string; requeuedPages: number }];
}
