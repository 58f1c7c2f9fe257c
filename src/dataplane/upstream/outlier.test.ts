// Outlier detection's consecutive-error detectors, on endpoint state with a controlled clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OutlierDetection } from '../../compile/snapshot.ts';
import { OutlierDetector } from './outlier.ts';
import { ClusterState, EndpointState } from './state.ts';

function detector(over: Partial<OutlierDetection>, size = 3) {
  let now = 1_000_000;
  const cluster = new ClusterState('c');
  const od: OutlierDetection = {
    consecutive5xxErrors: 5,
    consecutiveGatewayErrors: 0,
    consecutiveLocalOriginFailures: 5,
    splitExternalLocalOriginErrors: false,
    intervalMs: 10_000,
    baseEjectionTimeMs: 30_000,
    maxEjectionPercent: 100,
    minHealthPercent: 0,
    ...over,
  };
  const d = new OutlierDetector(od, cluster, size, () => now);
  const eps = Array.from({ length: size }, (_, i) => new EndpointState(`c|10.0.0.${i}:80`));
  return { d, cluster, eps, advance: (ms: number) => (now += ms), now: () => now };
}

describe('outlier detection', () => {
  test('consecutive 5xx eject at the threshold; a success in between resets the count', () => {
    const { d, eps, cluster, now } = detector({ consecutive5xxErrors: 3 });
    const [a] = eps;
    d.response(a, 500);
    d.response(a, 503);
    d.response(a, 200);
    d.response(a, 500);
    d.response(a, 500);
    assert.equal(a.ejectedUntil, 0);
    d.response(a, 502);
    assert.equal(a.ejectedUntil, now() + 30_000);
    assert.equal(a.ejectReason, '3 consecutive 5xx');
    assert.equal(cluster.ejected, 1);
    assert.equal(cluster.stats.outlier_detection_ejections_enforced_total, 1);
  });

  test('gateway errors (502, 503, 504) have their own detector', () => {
    const { d, eps } = detector({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 });
    d.response(eps[0], 500);
    d.response(eps[0], 500);
    assert.equal(eps[0].ejectedUntil, 0, '500 is not a gateway error');
    d.response(eps[0], 504);
    d.response(eps[0], 503);
    assert.equal(eps[0].ejectReason, '2 consecutive gateway errors');
  });

  test('local-origin failures count as 5xx unless split, then on their own', () => {
    const mixed = detector({ consecutive5xxErrors: 2 });
    mixed.d.failure(mixed.eps[0]);
    mixed.d.failure(mixed.eps[0]);
    assert.notEqual(mixed.eps[0].ejectedUntil, 0);

    const split = detector({
      consecutive5xxErrors: 2,
      splitExternalLocalOriginErrors: true,
      consecutiveLocalOriginFailures: 3,
    });
    const [a] = split.eps;
    split.d.failure(a);
    split.d.failure(a);
    assert.equal(a.ejectedUntil, 0);
    split.d.connected(a);
    split.d.failure(a);
    split.d.failure(a);
    split.d.failure(a);
    assert.equal(a.ejectReason, '3 consecutive local-origin failures');
  });

  test('outlierDetectionHttpErrorCodes: only the listed statuses are errors', () => {
    const { d, eps } = detector({ consecutive5xxErrors: 1, errorCodes: [429] });
    d.response(eps[0], 500);
    assert.equal(eps[0].ejectedUntil, 0);
    d.response(eps[1], 429);
    assert.notEqual(eps[1].ejectedUntil, 0);
  });

  test('maxEjectionPercent: an ejection that would pass it is not made', () => {
    const { d, eps, cluster } = detector({ consecutive5xxErrors: 1, maxEjectionPercent: 34 });
    d.response(eps[0], 500);
    d.response(eps[1], 500);
    assert.notEqual(eps[0].ejectedUntil, 0);
    assert.equal(eps[1].ejectedUntil, 0, '2 of 3 is 67% > 34%');
    assert.equal(cluster.stats.outlier_detection_ejections_overflow, 1);
  });

  test('each ejection lasts baseEjectionTime times how often; healthy intervals bring it down', () => {
    const { d, eps, advance, now } = detector({
      consecutive5xxErrors: 1,
      baseEjectionTimeMs: 1000,
      intervalMs: 500,
    });
    const [a] = eps;
    const eject = () => {
      d.response(a, 500);
      return a.ejectedUntil - now();
    };
    assert.equal(eject(), 1000);
    // It comes back (its timer would do this), fails again at once: twice as long.
    a.ejectedUntil = 0;
    a.returnedAt = now();
    assert.equal(eject(), 2000);
    a.ejectedUntil = 0;
    a.returnedAt = now();
    // Healthy for four intervals: the multiplier drops back before growing again.
    advance(2000);
    assert.equal(eject(), 1000);
  });
});
