import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captureRules, hostsFile } from './capture-network.ts';

test("a netns's hosts file names the control plane and each VIP; short names for its own namespace only", () => {
  const text = hostsFile({ address: '10.213.4.2', hostname: 'front-0', namespace: 'default' }, '10.213.4.1', [
    { name: 'details', namespace: 'default', ip: '10.100.0.1' },
    { name: 'echo', namespace: 'other', ip: '10.100.0.2' },
  ]);
  assert.match(text, /^10\.213\.4\.1\ttrellis-control-plane$/m);
  assert.match(
    text,
    /^10\.100\.0\.1\tdetails details\.default details\.default\.svc details\.default\.svc\.cluster\.local$/m,
  );
  assert.match(text, /^10\.100\.0\.2\techo\.other echo\.other\.svc echo\.other\.svc\.cluster\.local$/m);
});

test('the rules spare the proxy and loopback, and keep the sidecar ports out of the inbound redirect', () => {
  const rules = captureRules({ proxyUid: 990, outboundPort: 15001, inboundPort: 15006, adminPort: 15000 });
  const out = rules.slice(rules.indexOf('chain output'), rules.indexOf('chain prerouting'));
  assert.ok(out.indexOf('meta skuid 990 return') < out.indexOf('redirect'));
  assert.ok(out.indexOf('oifname "lo" return') < out.indexOf('redirect'));
  assert.match(out, /redirect to :15001/);
  assert.match(
    rules.slice(rules.indexOf('chain prerouting')),
    /tcp dport \{ 15006, 15000 \} return\n\s+meta l4proto tcp redirect to :15006/,
  );
});
