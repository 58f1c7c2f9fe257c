// normalize: the request target and authority as routing and authorization must see them. Paths are
// normalized before anything matches on them, in the mode the snapshot names (see ../normalize.ts);
// an inbound request also learns here which workload port it is for (Envoy picks the inbound filter
// chain by destination port).

import type { ProxyConfig } from '../../config.ts';
import type { Exchange } from '../context.ts';
import { type Normalizer, normalizeAuthority, pathNormalizer, stripTrailingHostDot } from '../normalize.ts';
import type { Phase, Step } from '../phase.ts';

/** Outbound and gateway set `absoluteForm`: the app may use us as its HTTP proxy. */
function normalized(ex: Exchange, normalizer: Normalizer, absoluteForm: boolean): boolean {
  const down = ex.down;
  let target = down.target;
  let authority = ex.tunnelAuthority ?? down.authority;
  if (absoluteForm && target.startsWith('http://')) {
    // Absolute form: the app used us as its HTTP proxy.
    const slash = target.indexOf('/', 7);
    authority = slash < 0 ? target.slice(7) : target.slice(7, slash);
    target = slash < 0 ? '/' : target.slice(slash);
  }
  ex.hostHeader = stripTrailingHostDot(authority);
  ex.authority = normalizeAuthority(authority);
  const norm = normalizer(target);
  if (!norm.ok) {
    ex.reply(400, 'DPE', `normalize: ${norm.reason}`);
    return false;
  }
  ex.path = norm.path;
  ex.query = norm.query;
  return true;
}

function inboundPort(cfg: ProxyConfig, normalizer: Normalizer): Step {
  const inbound = cfg.inbound;
  const only = inbound?.ports.length === 1 ? inbound.ports[0] : undefined;
  return (ex) => {
    if (!normalized(ex, normalizer, false)) return false;
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
    const normalizer = pathNormalizer(cfg?.snapshot.http?.pathNormalization ?? 'BASE');
    if (kind !== 'inbound') return (ex) => normalized(ex, normalizer, true);
    return cfg?.inbound ? inboundPort(cfg, normalizer) : (ex) => normalized(ex, normalizer, false);
  },
};
