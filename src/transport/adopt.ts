// Reading in place on an accepted socket, which Node does not offer: see adopt() below and
// docs/DESIGN.md ("Reading in place needs a Node internal").
import { Socket, type OnReadOpts } from "node:net";

/** A socket as a server hands it over, with the internal handle Node keeps in it. */
export type AcceptedSocket = Socket & { _handle?: object | null };

/**
 * Node reads into buffers a caller names (`onread`) only on sockets it creates, not on those a
 * server accepts; the accepted socket's handle can be moved to such a socket. This leans on Node
 * internals (the `_handle` property, the `handle` option): where they are missing, the accepted
 * socket is used as it is and reads into Node's buffers, to be copied from there.
 */
export function adopt(accepted: AcceptedSocket, onread: OnReadOpts): Socket {
  const handle = accepted._handle;
  accepted._handle = null;
  accepted.destroy(); // handle-less: this only tells the server that the connection moved on
  return new Socket({ handle, readable: true, writable: true, onread } as ConstructorParameters<typeof Socket>[0]);
}
