// authenticate: who the peer is. Over mTLS the handshake has proven it already; what is left is
// PeerAuthentication's per-port mode: plaintext to a STRICT port is refused. When no port is
// PERMISSIVE the listener cuts plaintext at accept, and this phase is not on the path at all.
import type { Phase } from '../phase.ts';

export const authenticate: Phase = {
  name: 'authenticate',
  setup({ kind, cfg }) {
    if (kind !== 'inbound' || !cfg?.acceptsPlaintext) return undefined;
    return (ex) => {
      const port = ex.targetPort!;
      if (ex.peerTls.identity === undefined && cfg.inboundMtls(port) === 'STRICT') {
        ex.reply(403, 'DPE', `plaintext to port ${port}, which requires mTLS (STRICT)`);
        return false;
      }
      return true;
    };
  },
};
