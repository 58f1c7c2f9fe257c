// A real OpenID provider (the npm package oidc-provider) on 127.0.0.1, issuing JWT access tokens
// through the OAuth client_credentials grant, with a signing key the test can rotate: the HTTP server
// stays, a new Provider instance with the new key takes over, and its JWKS endpoint serves only that.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'mesh-client';
const CLIENT_SECRET = 'mesh-client-secret-that-is-long-enough';
/** Resource indicators and the audience their tokens carry. */
const AUDIENCES: Record<string, string> = { 'urn:bookinfo': 'bookinfo', 'urn:other': 'other' };

export interface SigningKey {
  /** Private JWK (with kid and alg), as the provider holds it. */
  jwk: JWK;
  privateKey: CryptoKey;
}

export async function signingKey(kid: string): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { jwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' }, privateKey };
}

function provider(issuer: string, key: SigningKey): Provider {
  return new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      },
    ],
    jwks: { keys: [key.jwk] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Access tokens as JWTs: an API (a resource server) asks for them by resource indicator.
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:bookinfo',
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          const audience = AUDIENCES[resource];
          if (!audience) throw new Error(`unknown resource ${resource}`);
          return { scope: 'read', audience, accessTokenFormat: 'jwt', accessTokenTTL: 300 };
        },
      },
    },
  });
}

export class OpenIdProvider {
  readonly issuer: string;
  key: SigningKey;
  private readonly server: http.Server;
  private current: Provider;

  private constructor(server: http.Server, issuer: string, key: SigningKey) {
    this.server = server;
    this.issuer = issuer;
    this.key = key;
    this.current = provider(issuer, key);
  }

  static async start(): Promise<OpenIdProvider> {
    let handler: http.RequestListener = (_req, res) => res.end();
    const server = http.createServer((req, res) => handler(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const op = new OpenIdProvider(server, issuer, await signingKey('key-1'));
    handler = (req, res) => op.current.callback()(req, res);
    return op;
  }

  get jwksUri(): string {
    return `${this.issuer}/jwks`;
  }

  /** A new signing key; the old one is gone from the JWKS at once. */
  async rotate(kid: string): Promise<void> {
    this.key = await signingKey(kid);
    this.current = provider(this.issuer, this.key);
  }

  /** An access token from the token endpoint, by the client_credentials grant. */
  async token(resource = 'urn:bookinfo'): Promise<string> {
    const res = await fetch(`${this.issuer}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read', resource }).toString(),
    });
    const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
    if (!res.ok || !body.access_token)
      throw new Error(`token endpoint: ${res.status} ${body.error}: ${body.error_description}`);
    return body.access_token;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
