// TLS on every channel (node:tls): a migration completes over it, with and without client
// certificates, and a peer that cannot prove its identity is refused on either side, with an error
// that says which certificate was the problem. The test certificates: test/fixtures/tls/README.md.
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { Listener } from "../src/migration/listener.js";
import { Source } from "../src/migration/source.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { precopy } from "../src/policy/precopy.js";
import type { TlsOptions } from "../src/transport/tls.js";
import { guest, sha256, withListener } from "./peers.js";

const pem = (name: string) => readFileSync(new URL(`./fixtures/tls/${name}.pem`, import.meta.url));
const server: TlsOptions = { cert: pem("server-cert"), key: pem("server-key") };
const mutualServer: TlsOptions = { ...server, ca: pem("ca-cert") };
const client: TlsOptions = { ca: pem("ca-cert"), cert: pem("client-cert"), key: pem("client-key") };

const withTls = (tls: TlsOptions, run: (listener: Listener, port: number) => Promise<void>) => withListener({ secret: "s", tls, timeoutMs: 2000 }, run);

describe("TLS", () => {
  it("migrates over TLS on two channels, the destination's certificate verified against the CA", async () => {
    await withTls(server, async (listener, port) => {
      const region = guest(2048, 3);
      const received = listener.next();
      const stats = await new Source([region], { host: "127.0.0.1", port, secret: "s", channels: 2, policy: precopy(), tls: { ca: pem("ca-cert") } }).migrate();
      expect(stats.status).toBe("completed");
      expect(sha256((await received).regions)).toBe(sha256([region]));
    });
  });

  it("migrates over mutual TLS on three channels, two of them on threads that encode, each thread with its own TLS connection", async () => {
    await withTls(mutualServer, async (listener, port) => {
      const region = guest(2048, 8, { lanes: 3 });
      const received = listener.next();
      const stats = await new Source([region], { host: "127.0.0.1", port, secret: "s", channels: 3, channelThreads: true, policy: precopy(), tls: client }).migrate();
      expect(stats.channels).toBe(3);
      expect(sha256((await received).regions)).toBe(sha256([region]));
    });
  });

  it("checks the name: localhost is in the certificate, so is ::1", async () => {
    await withTls(server, async (listener, port) => {
      const region = guest(256, 4);
      const received = listener.next();
      await new Source([region], { host: "localhost", port, secret: "s", policy: stopCopy(), tls: { ca: pem("ca-cert") } }).migrate();
      expect(sha256((await received).regions)).toBe(sha256([region]));
    });
  });

  it("refuses a destination whose certificate does not chain to the source's CA, and says to give --tls-ca", async () => {
    await withTls(server, async (_listener, port) => {
      const source = new Source([guest(256, 5)], { host: "127.0.0.1", port, secret: "s", policy: stopCopy(), tls: { ca: pem("other-ca-cert") } });
      await expect(source.migrate()).rejects.toMatchObject({ reason: "connection", message: expect.stringMatching(/over TLS \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\).*--tls-ca/) });
    });
  });

  it("with mutual TLS, takes a source whose certificate the CA signed and refuses one without a certificate or with a stranger's", async () => {
    await withTls(mutualServer, async (listener, port) => {
      const region = guest(512, 6);
      const received = listener.next();
      await new Source([region], { host: "127.0.0.1", port, secret: "s", policy: stopCopy(), tls: client }).migrate();
      expect(sha256((await received).regions)).toBe(sha256([region]));

      for (const tls of [{ ca: pem("ca-cert") }, { ca: pem("ca-cert"), cert: pem("stranger-cert"), key: pem("stranger-key") }]) {
        const refused = new Promise<Error>((resolve) => listener.once("refused", resolve));
        const source = new Source([guest(64, 7)], { host: "127.0.0.1", port, secret: "s", policy: stopCopy(), tls });
        await expect(source.migrate()).rejects.toMatchObject({ message: expect.stringMatching(/does the destination trust this source's certificate|certificate required/) });
        expect((await refused).message).toMatch(/TLS handshake with 127\.0\.0\.1:\d+ failed/);
      }
    });
  });

  it("a plain TCP source at a TLS destination is refused during the TLS handshake, not read as frames", async () => {
    await withTls(server, async (listener, port) => {
      const refused = new Promise<Error>((resolve) => listener.once("refused", resolve));
      const source = new Source([guest(64, 8)], { host: "127.0.0.1", port, secret: "s", policy: stopCopy(), timeoutMs: 2000 });
      await expect(source.migrate()).rejects.toMatchObject({ reason: "connection" });
      expect((await refused).message).toMatch(/TLS handshake/);
    });
  });
});
