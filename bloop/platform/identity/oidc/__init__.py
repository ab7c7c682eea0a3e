"""Sign-in through a tenant's external identity providers: OpenID Connect (Google, Microsoft, any
issuer with a discovery document) and GitHub, which speaks plain OAuth2.

A sign-in goes out with `state`, `nonce` and a PKCE (S256) challenge; the state is kept in the
cache for a few minutes, bound to the tenant and provider, and spent on its first use. The
callback trades the code (authlib), checks the ID token (signature against the provider's JWKS,
issuer, audience, expiry, nonce; joserfc), requires a verified email at an allowed domain, and
issues Bloop's own tokens for the account the provider's account (its `sub`) is linked to. An
unlinked one is linked, at this first sign-in, to the tenant's user with that email (unless a self
sign-up made it, its email never proved: 409 `email_unverified`; or it is linked already: 409
`oidc_linked_elsewhere`) or to a new learner. Each sign-in and refusal goes to the security
log. The callback address given to the provider is never the request's own (its Host header is
anyone's to write): it is pinned when an admin configures the provider, or set by the operator."""
