// The push protocol between proxy and control plane: newline-delimited JSON on one long-lived HTTP/2
// stream over mutual TLS (`POST /v1/stream`). The proxy speaks first (hello), the control plane sends
// snapshots, the proxy answers each with an ACK or a NACK carrying the reason.
import type { ProxyNode, ProxySnapshot } from './snapshot.ts';

export const PUSH_PATH = '/v1/stream';
export const CERTIFICATE_PATH = '/v1/certificates';

export type ProxyMessage =
  | { type: 'hello'; node: ProxyNode /** version the proxy runs from before a reconnect */; running?: string }
  | { type: 'ack'; version: string }
  | { type: 'nack'; version: string; reason: string }
  | { type: 'health'; healthy: boolean };

export type ControlPlaneMessage = { type: 'snapshot'; snapshot: ProxySnapshot };

export interface CertificateRequest {
  csr: string;
  namespace: string;
  serviceAccount: string;
}

export interface CertificateResponse {
  certChain: string;
  trustBundle: string;
}

/** Splits a stream of text chunks into the protocol's lines; both ends read the stream with it. */
export class LineBuffer {
  /** Chunks of the line not finished yet: a long line is joined once, not re-scanned per chunk. */
  private rest: string[] = [];

  /** The complete, non-empty lines the chunk finishes. */
  push(chunk: string): string[] {
    let nl = chunk.indexOf('\n');
    if (nl === -1) {
      if (chunk !== '') this.rest.push(chunk);
      return [];
    }
    const lines: string[] = [];
    this.rest.push(chunk.slice(0, nl));
    const first = this.rest.join('');
    if (first !== '') lines.push(first);
    let start = nl + 1;
    for (nl = chunk.indexOf('\n', start); nl !== -1; nl = chunk.indexOf('\n', start)) {
      if (nl > start) lines.push(chunk.slice(start, nl));
      start = nl + 1;
    }
    this.rest = start < chunk.length ? [chunk.slice(start)] : [];
    return lines;
  }
}
