/**
 * A self-signed certificate and its key for TLS servers on loopback in unit tests only (the
 * scripted API servers of the HTTP/2 transport's tests): for 127.0.0.1 and localhost, valid from
 * 2020 to 2120. Not a secret: nothing outside these tests trusts it.
 */
export const loopbackCert = `-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUdwYFbQGo5fcawwEjOPiPUmxzzfQwCgYIKoZIzj0EAwIw
JjEkMCIGA1UEAwwbcmV0cm9zcGVjdGl2ZSBsb29wYmFjayB0ZXN0MCAXDTIwMDEw
MTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAwWjAmMSQwIgYDVQQDDBtyZXRyb3NwZWN0
aXZlIGxvb3BiYWNrIHRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQpRalU
5RP3LQTRxid1mHivJGZ5I1vD0O5v1YEKRv5rEFZeMjx/KDGWSSUSuzTdF/HSxnrO
MwzxCnOZILsLt/bkoy8wLTAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBf1yBzqWsv9RVrFS2CjM2m
B3DMSbMiweTYjKeHVTzkqwIhAOJR0RW4fVrJ05+B3e2DpjqLUWM3K46DRrY3zUhB
W2Aj
-----END CERTIFICATE-----
`;

export const loopbackKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwuGkbLJ8NaA88AXY
mphUaiPFaYz7zthH8cpE04JigtShRANCAAQpRalU5RP3LQTRxid1mHivJGZ5I1vD
0O5v1YEKRv5rEFZeMjx/KDGWSSUSuzTdF/HSxnrOMwzxCnOZILsLt/bk
-----END PRIVATE KEY-----
`;
