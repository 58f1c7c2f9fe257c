// normalize: the request target and authority as routing and authorization must see them. Paths are
// normalized before anything matches on them (see ../normalize.ts); an inbound request also learns
// here which workload port it is for (Envoy picks the inbound filter chain by destination port).

import type { ProxyConfig } from '../../config.ts';
import type { Exchange } from '../context.ts';
import { normalizeRequestTarget } from '../normalize.ts';
import type { Phase, Step } from '../phase.ts';

/** Outbound and gateway: the app may use us as its HTTP proxy and send the absolute form. */
function target(ex: Exchange): boolean {
  return normalized(ex, true);
}

function normalized(ex: Exchange, absoluteForm: boolean): boolean {
  const down = ex.down;
  let target = down.target;
  let authority = ex.tunnelAuthority ?? down.authority;
  if (absoluteForm && target.startsWith('http://')) {
    // Absolute form: the app used us as its HTTP proxy.
    const slash = target.indexOf('/', 7);
    authority = slash < 0 ? target.slice(7) : target.slice(7, slash);
    target = slash < 0 ? '/' : target.slice(slash);
  }
  ex.hostHeader = authority;
  ex.authority = authority.toLowerCase();
  const norm = normalizeRequestTarget(target);
  if (!norm.ok) {
    ex.reply(400, 'DPE', `normalize: ${norm.reason}`);
    return false;
  }
  ex.path = norm.path;
  ex.query = norm.query;
  return true;
}

function inboundPort(cfg: ProxyConfig): Step {
  const inbound = cfg.inbound;
  const only = inbound?.ports.length === 1 ? inbound.ports[0] : undefined;
  return (ex) => {
    if (!normalized(ex, false)) return false;
    const peer = ex.peerTls;
    // Over mTLS the client proxy names the service port in the SNI
    // (`outbound_.<port>_.<subset>_.<host>`); a plaintext client only in its Host header.
    const service =
      peer.service ?? (peer.identity === undefined ? cfg.inboundService(ex.authority) : undefined);
    const port = service ? cfg.inboundByService.get(service) : only;
    if (port === undefined) {
      const what = peer.sni ? `SNI ${peer.sni}` : `host ${ex.authority || '<none>'}`;
      ex.reply(404, 'NR', `no inbound service for ${what}`);
      return false;
    }
    ex.targetPort = port;
    ex.service = service ? service.slice(0, service.lastIndexOf(':')) : 'unknown';
    return true;
  };
}

export const normalize: Phase = {
  name: 'normalize',
  setup({ kind, cfg }) {
    if (kind !== 'inbound') return target;
    return cfg?.inbound ? inboundPort(cfg) : (ex) => normalized(ex, false);
  },
};
