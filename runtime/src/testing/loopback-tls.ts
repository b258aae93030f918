/**
 * A self-signed certificate and its key for TLS servers on loopback in unit tests only (the
 * scripted API servers of the HTTP/2 transport's tests): for 127.0.0.1 and localhost, valid until
 * 2126. Not a secret: nothing outside a test trusts it.
 */
export const loopbackCert = `-----BEGIN CERTIFICATE-----
MIIBvzCCAWWgAwIBAgIUKN0g8Q1BRoXtpk+cuGJBK5FAuRAwCgYIKoZIzj0EAwIw
JjEkMCIGA1UEAwwbcmV0cm9zcGVjdGl2ZSBsb29wYmFjayB0ZXN0MCAXDTI2MTIw
NDIyMzgzMloYDzIxMjYxMTEwMjIzODMyWjAmMSQwIgYDVQQDDBtyZXRyb3NwZWN0
aXZlIGxvb3BiYWNrIHRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATsXblb
mXkD4u6EWbzgsQs9+Uzwmem8UqPwCbgGpXEGSZFbsHdcPvqv7HrzVLmLtXN1AGcs
vsA4TjjmyOUd0y6So28wbTAdBgNVHQ4EFgQU02KyWdMRSwJ/5wR4bltAprnGo04w
HwYDVR0jBBgwFoAU02KyWdMRSwJ/5wR4bltAprnGo04wDwYDVR0TAQH/BAUwAwEB
/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZIzj0EAwIDSAAwRQIg
WBqEGbwmJ7ydBJN/g91No9XGAR08tujWe8/yMMhE8wkCIQCM9FrO+GZHWMSepZft
OqzXaX7nkqIwTy91GNwGe7tfMQ==
-----END CERTIFICATE-----
`;

export const loopbackKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjFSp+/PCpoW0oNfY
uqKCoGhGhfYnSpKUubyYQjguToahRANCAATsXblbmXkD4u6EWbzgsQs9+Uzwmem8
UqPwCbgGpXEGSZFbsHdcPvqv7HrzVLmLtXN1AGcsvsA4TjjmyOUd0y6S
-----END PRIVATE KEY-----
`;
