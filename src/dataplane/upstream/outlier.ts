// Outlier detection (DestinationRule `outlierDetection`), as Envoy's consecutive-errors detectors do it:
// each answer of an endpoint counts toward or resets its consecutive 5xx, gateway-error and (with
// splitExternalLocalOriginErrors) local-origin failures; reaching a threshold ejects the endpoint at
// once, for baseEjectionTime times how often it was ejected, unless maxEjectionPercent of the cluster
// is out already. An endpoint that stays healthy for an interval has its multiplier brought down.
import type { OutlierDetection } from '../../compile/snapshot.ts';
import type { ClusterState, EndpointState } from './state.ts';

/** Envoy's max_ejection_time default: the multiplier stops growing here. */
const MAX_EJECTION_MS = 300_000;

export class OutlierDetector {
  readonly od: OutlierDetection;
  private readonly cluster: ClusterState;
  /** Endpoints of the cluster, for maxEjectionPercent. */
  private readonly size: number;
  private readonly now: () => number;

  constructor(od: OutlierDetection, cluster: ClusterState, size: number, now: () => number = Date.now) {
    this.od = od;
    this.cluster = cluster;
    this.size = size;
    this.now = now;
  }

  /** An answer from the upstream. */
  response(ep: EndpointState, status: number): void {
    const codes = this.od.errorCodes;
    if (codes ? !codes.includes(status) : status < 500) {
      ep.consecutive5xx = 0;
      ep.consecutiveGateway = 0;
      if (!this.od.splitExternalLocalOriginErrors) ep.consecutiveLocal = 0;
      return;
    }
    this.error(ep, status >= 502 && status <= 504);
  }

  /** No answer: a connect failure, reset or timeout, which Envoy calls a local-origin failure. */
  failure(ep: EndpointState): void {
    if (this.od.splitExternalLocalOriginErrors) {
      ep.consecutiveLocal++;
      const n = this.od.consecutiveLocalOriginFailures;
      if (n > 0 && ep.consecutiveLocal >= n) this.eject(ep, `${n} consecutive local-origin failures`);
      return;
    }
    // Not split: Envoy counts it as a 503 from the upstream.
    this.error(ep, true);
  }

  /** A successful connection; with the split, it ends a run of local-origin failures. */
  connected(ep: EndpointState): void {
    if (this.od.splitExternalLocalOriginErrors) ep.consecutiveLocal = 0;
  }

  private error(ep: EndpointState, gateway: boolean): void {
    const od = this.od;
    ep.consecutive5xx++;
    if (gateway) ep.consecutiveGateway++;
    if (od.consecutive5xxErrors > 0 && ep.consecutive5xx >= od.consecutive5xxErrors)
      this.eject(ep, `${od.consecutive5xxErrors} consecutive 5xx`);
    else if (od.consecutiveGatewayErrors > 0 && ep.consecutiveGateway >= od.consecutiveGatewayErrors)
      this.eject(ep, `${od.consecutiveGatewayErrors} consecutive gateway errors`);
  }

  private eject(ep: EndpointState, reason: string): void {
    const now = this.now();
    if (ep.ejectedUntil > now) return;
    const c = this.cluster;
    ep.consecutive5xx = 0;
    ep.consecutiveGateway = 0;
    ep.consecutiveLocal = 0;
    // Envoy ejects at least one endpoint whatever the percentage allows.
    if (c.ejected > 0 && (100 * (c.ejected + 1)) / this.size > this.od.maxEjectionPercent) {
      c.stats.outlier_detection_ejections_overflow++;
      return;
    }
    // Healthy intervals since it last came back each take one off the multiplier.
    if (ep.returnedAt > 0) {
      const healthy = Math.floor((now - ep.returnedAt) / this.od.intervalMs);
      ep.ejections = Math.max(0, ep.ejections - healthy);
    }
    ep.ejections++;
    const ms = Math.min(
      this.od.baseEjectionTimeMs * ep.ejections,
      Math.max(MAX_EJECTION_MS, this.od.baseEjectionTimeMs),
    );
    ep.ejectedUntil = now + ms;
    ep.ejectReason = reason;
    c.ejected++;
    c.stats.outlier_detection_ejections_enforced_total++;
    c.healthChanged();
    setTimeout(() => this.restore(ep), ms).unref();
  }

  private restore(ep: EndpointState): void {
    if (ep.ejectedUntil === 0) return;
    ep.ejectedUntil = 0;
    ep.ejectReason = '';
    ep.returnedAt = this.now();
    this.cluster.ejected--;
    this.cluster.healthChanged();
  }
}
