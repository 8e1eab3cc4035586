// A real OpenID Connect provider on loopback for the single sign-on test: panva's oidc-provider
// (a certified OpenID provider implementation), with its development sign-in pages (any login name,
// any password: the test is about Argus's side of the protocol, not the provider's accounts).
//   node idp.mjs PORT REDIRECT_URI CLIENT_SECRET
// Issuer http://127.0.0.1:PORT; one client, `argus`, with client_secret_basic, PKCE required, an
// RS256 signing key generated at start. Users' `groups` claim (from the userinfo endpoint):
// mei → fraud-apac, ada → fraud-admins, anyone else → none. Prints "ready <issuer>" when listening.
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const [port, redirect, secret] = process.argv.slice(2);
if (!port || !redirect || !secret) {
  console.error('usage: node idp.mjs PORT REDIRECT_URI CLIENT_SECRET');
  process.exit(2);
}
const GROUPS = { mei: ['fraud-apac', 'staff'], ada: ['fraud-admins'] };
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'argus',
    client_secret: secret,
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, groups: GROUPS[id] ?? [] };
      },
    };
  },
  pkce: { required: () => true },
  cookies: { keys: ['argus-test-idp-cookie-key-0123456789'] },
  features: { devInteractions: { enabled: true } },
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`ready ${issuer}`));
