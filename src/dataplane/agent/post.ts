// One JSON request to the control plane on a session of its own: a certificate request with the
// bootstrap token (first issue), or with the current certificate (renewal).
import http2 from 'node:http2';

export type ControlPlaneAuth = { token?: string } | { key: string; cert: string };

export function postToControlPlane(
  controlPlane: string,
  rootCertPem: string,
  path: string,
  body: string,
  auth: ControlPlaneAuth,
  timeoutMs?: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const tls = 'cert' in auth ? { key: auth.key, cert: auth.cert } : {};
    const session = http2.connect(controlPlane, { ca: rootCertPem, ...tls });
    session.on('error', reject);
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/json',
    };
    if ('token' in auth && auth.token) headers.authorization = `Bearer ${auth.token}`;
    const req = session.request(headers);
    if (timeoutMs) req.setTimeout(timeoutMs, () => req.close());
    let status = 0;
    let text = '';
    req.setEncoding('utf8');
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.on('data', (c: string) => {
      text += c;
    });
    req.on('end', () => {
      session.close();
      if (status === 200) resolve(text);
      else reject(new Error(`${path}: HTTP ${status}: ${text.slice(0, 300)}`));
    });
    req.on('error', (err) => {
      session.destroy();
      reject(err);
    });
    req.end(body);
  });
}
