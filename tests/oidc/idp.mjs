// A real OpenID provider for the oidc and azure tests: oidc-provider over https, mounted
// under /idp (MSAL wants at least one path segment in an authority).
//
// Configured by environment: IDP_PORT, IDP_CERT, IDP_KEY (PEM files), IDP_SVC_SECRET (the
// confidential clients' secret: "svc", "svc-short" and "vault"), IDP_SHORT_TTL (access-token
// lifetime of the "-short" clients, seconds), IDP_ISSUER (optional: the issuer it names, for a provider behind a
// reverse proxy; same /idp path; default https://127.0.0.1:IDP_PORT/idp). Prints
// "ready <issuer>" on stdout once listening.
//
// The person's side is a tiny form flow a test can drive with one HTTP session:
// GET /idp/device, post the user code, confirm (or abort), log in, consent (or deny).
// GET /idp-stats returns counts of token requests by grant type, for the tests, and
// refresh_token_reused: refresh-token grants that presented a refresh token already
// presented before (a client spending one refresh token twice).
//
// Where the metadata is published: IDP_METADATA (default "openid") picks it, and
// POST /idp-metadata?serve=MODE changes it while running. "openid": as oidc-provider
// publishes it, OpenID discovery (/idp/.well-known/openid-configuration) and the same
// document appended as RFC 8414 metadata (/idp/.well-known/oauth-authorization-server).
// "rfc8414": only RFC 8414's path-inserted location,
// /.well-known/oauth-authorization-server/idp.
// "rfc8414-appended": only the appended location. "none": no metadata anywhere. The
// document is oidc-provider's own in every mode.
//
// IDP_EXACT_REDIRECTS (optional, space-separated URIs) adds the public client "cli-exact",
// registered with exactly those redirect URIs. It is a web client: oidc-provider then
// compares the port too, as providers that register exact redirect URIs do (for the
// native clients, any port on loopback is allowed, RFC 8252 §7.3).
import https from 'node:https';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT);
const prefix = '/idp';
const issuer = process.env.IDP_ISSUER || `https://127.0.0.1:${port}${prefix}`;
const shortTtl = Number(process.env.IDP_SHORT_TTL || 5);
const GATEWAY = 'https://gateway.example';
const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
const stats = {};
const presented = new Set(); // every refresh token a refresh-token grant has presented
const METADATA_MODES = ['openid', 'rfc8414', 'rfc8414-appended', 'none'];
let metadata = process.env.IDP_METADATA || 'openid';
if (!METADATA_MODES.includes(metadata)) throw new Error(`IDP_METADATA: ${metadata}`);
const METADATA_AT = {
  openid: `${prefix}/.well-known/openid-configuration`,
  rfc8414: `/.well-known/oauth-authorization-server${prefix}`,
  'rfc8414-appended': `${prefix}/.well-known/oauth-authorization-server`,
};

const publicClient = (id) => ({
  client_id: id,
  token_endpoint_auth_method: 'none',
  application_type: 'native',
  grant_types: [DEVICE, 'refresh_token', 'authorization_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/callback'],
});

const exactClient = (id, uris) => ({
  client_id: id,
  token_endpoint_auth_method: 'none',
  application_type: 'web',
  grant_types: ['refresh_token', 'authorization_code'],
  response_types: ['code'],
  redirect_uris: uris,
});
const exactRedirects = (process.env.IDP_EXACT_REDIRECTS || '').split(' ').filter(Boolean);

const confidentialClient = (id) => ({
  client_id: id,
  client_secret: process.env.IDP_SVC_SECRET,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: 'gateway',
});

// Vault's (OpenBao's) oidc auth method: a confidential client with the authorization code
// grant (and the implicit id_token one, for Vault's form_post mode) whose redirect is the
// Vault CLI's loopback callback. As a native client its loopback redirects match on any
// port (RFC 8252), as Vault's allowed_redirect_uris do, so a test can listen on a free
// port instead of 8250.
const vaultClient = {
  client_id: 'vault',
  client_secret: process.env.IDP_SVC_SECRET,
  application_type: 'native',
  grant_types: ['authorization_code', 'implicit'],
  response_types: ['code', 'id_token'],
  redirect_uris: ['http://localhost:8250/oidc/callback', 'http://127.0.0.1:8250/oidc/callback'],
};

const provider = new Provider(issuer, {
  clients: [
    publicClient('cli'),
    publicClient('cli-short'),
    // MSAL's interactive sign-in redirects to http://localhost:<free port> (no path):
    // oidc-provider matches a native client's loopback redirect whatever its port.
    { ...publicClient('msal'), redirect_uris: ['http://localhost'] },
    { ...publicClient('msal-short'), redirect_uris: ['http://localhost'] },
    confidentialClient('svc'),
    confidentialClient('svc-short'),
    ...(exactRedirects.length ? [exactClient('cli-exact', exactRedirects)] : []),
    vaultClient,
  ],
  findAccount: (ctx, sub) => ({
    accountId: sub,
    claims: () => ({ sub, email: `${sub}@example.test`, name: sub }),
  }),
  claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'gateway'],
  issueRefreshToken: (ctx, client, code) =>
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    deviceFlow: {
      enabled: true,
      userCodeInputSource: (ctx, form, out, err) => {
        ctx.body = `<html><body><p>${err ? 'error' : 'Enter the code'}</p>${form}</body></html>`;
      },
      userCodeConfirmSource: (ctx, form, client, info, code) => {
        ctx.body = `<html><body><p>Confirm ${code}</p>${form}</body></html>`;
      },
      successSource: (ctx) => { ctx.body = '<html><body><p>Sign-in Success</p></body></html>'; },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf || GATEWAY,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'gateway',
        audience: resource,
        accessTokenTTL: client.clientId.endsWith('-short') ? shortTtl : 3600,
        accessTokenFormat: 'jwt',
      }),
    },
  },
  ttl: {
    DeviceCode: 600,
    IdToken: (ctx, token, client) => (client.clientId.endsWith('-short') ? shortTtl : 3600),
    RefreshToken: 86400,
    Grant: 86400,
    Session: 86400,
    Interaction: 600,
    ClientCredentials: (ctx, token, client) => (client.clientId.endsWith('-short') ? shortTtl : 3600),
  },
  interactions: { url: (ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
  pkce: { required: () => true },
});
provider.proxy = false;

// Device authorization answers without interval/message make clients wait 5 s per poll.
provider.use(async (ctx, next) => {
  if (ctx.path === '/token' && ctx.method === 'POST') {
    await next();
    const grant = ctx.oidc?.params?.grant_type || 'unknown';
    const key = `${grant}:${ctx.status}`;
    stats[key] = (stats[key] || 0) + 1;
    const spent = grant === 'refresh_token' && ctx.oidc?.params?.refresh_token;
    if (spent) {
      if (presented.has(spent)) stats.refresh_token_reused = (stats.refresh_token_reused || 0) + 1;
      presented.add(spent);
    }
    return;
  }
  await next();
  if (ctx.path === '/device/auth' && ctx.body && ctx.body.device_code) {
    stats['device_authorization'] = (stats['device_authorization'] || 0) + 1;
    ctx.body.interval = 1;
    ctx.body.message = `To sign in, open ${ctx.body.verification_uri} and enter the code ${ctx.body.user_code}`;
  }
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(data))));
    req.on('error', reject);
  });
}

function page(res, html) {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(`<html><body>${html}</body></html>`);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const base = `${prefix}/interaction/${uid}`;
  if (req.method === 'GET') {
    if (details.prompt.name === 'login') {
      return page(res, `<form method="post" action="${base}/login">
        <input name="login"/><input name="password" type="password"/></form>`);
    }
    return page(res, `<form method="post" action="${base}/confirm"></form>
      <form method="post" action="${base}/abort"></form><p>consent</p>`);
  }
  const form = await readForm(req);
  if (action === 'login') {
    if (!form.login || form.password !== 'correct horse') {
      return page(res, '<p>wrong password</p>');
    }
    return provider.interactionFinished(req, res, { login: { accountId: form.login } },
      { mergeWithLastSubmission: false });
  }
  if (action === 'abort') {
    return provider.interactionFinished(req, res,
      { error: 'access_denied', error_description: 'End-User aborted interaction' },
      { mergeWithLastSubmission: false });
  }
  const { prompt: { details: missing }, params, session: { accountId }, grantId } = details;
  const grant = grantId ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const saved = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId: saved } },
    { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = https.createServer({
  cert: fs.readFileSync(process.env.IDP_CERT),
  key: fs.readFileSync(process.env.IDP_KEY),
}, async (req, res) => {
  try {
    if (req.url === '/idp-stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(stats));
    }
    if (req.url.startsWith('/idp-metadata')) {
      const mode = new URL(req.url, 'https://x').searchParams.get('serve');
      if (req.method !== 'POST' || !METADATA_MODES.includes(mode)) {
        res.writeHead(400);
        return res.end();
      }
      metadata = mode;
      res.writeHead(204);
      return res.end();
    }
    const path = req.url.split('?')[0];
    const where = Object.keys(METADATA_AT).find((mode) => METADATA_AT[mode] === path);
    if (where && metadata !== 'openid' && where !== metadata) {
      res.writeHead(404);
      return res.end();
    }
    if (where === 'rfc8414' && metadata === 'rfc8414') {
      // oidc-provider's own document, served at RFC 8414's path-inserted location.
      req.originalUrl = METADATA_AT.openid;
      req.url = '/.well-known/openid-configuration';
      return callback(req, res);
    }
    const m = req.url.match(/^\/idp\/interaction\/([^/?]+)(?:\/(login|confirm|abort))?/);
    if (m) return await interaction(req, res, m[1], m[2]);
    if (req.url.startsWith(prefix)) {
      req.originalUrl = req.url;
      req.url = req.url.slice(prefix.length) || '/';
      return callback(req, res);
    }
    res.writeHead(404);
    res.end();
  } catch (err) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(err));
  }
});
server.listen(port, '127.0.0.1', () => { console.log(`ready ${issuer}`); });
