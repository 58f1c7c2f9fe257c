import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RouteTable } from '../../compile/snapshot.ts';
import { CompiledRouteTable, RequestView } from './route-table.ts';

const table: RouteTable = {
  name: 'http.80',
  virtualHosts: [
    {
      name: '*:80',
      domains: ['*'],
      routes: [
        {
          name: 'admins',
          origin: 'VirtualService istio-system/claims http[0]',
          matches: [
            {
              headers: [
                { name: '@request.auth.claims.groups', match: { exact: 'admin' }, claim: ['groups'] },
              ],
            },
            {
              headers: [
                {
                  name: '@request.auth.claims[org][tier]',
                  match: { prefix: 'gold' },
                  claim: ['org', 'tier'],
                },
              ],
            },
            { headers: [{ name: '@request.auth.claims.level', match: { exact: '3' }, claim: ['level'] }] },
          ],
          action: { type: 'direct', status: 200 },
        },
        {
          name: 'rest',
          origin: 'VirtualService istio-system/claims http[1]',
          matches: [],
          action: { type: 'direct', status: 404 },
        },
      ],
    },
  ],
};

test('@request.auth.claims matches read the verified claims, never a header of that name', () => {
  const vh = new CompiledRouteTable(table).virtualHost('x')!;
  const route = (claims?: Record<string, unknown>, headers: Record<string, string> = {}) =>
    CompiledRouteTable.route(vh, new RequestView('/', '', 'GET', 'http', 'x', headers, claims))?.name;
  assert.equal(route({ groups: ['dev', 'admin'] }), 'admins', 'any string of a list claim');
  assert.equal(route({ groups: 'admin' }), 'admins');
  assert.equal(route({ groups: ['dev'] }), 'rest');
  assert.equal(route({ org: { tier: 'gold-plus' } }), 'admins', 'nested claim');
  assert.equal(route({ org: 'gold' }), 'rest');
  assert.equal(route({ level: 3 }), 'admins', 'a number compares as text');
  assert.equal(route(undefined, { '@request.auth.claims.groups': 'admin' }), 'rest', 'no token: no claims');
});
