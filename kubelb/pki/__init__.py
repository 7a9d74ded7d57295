"""The xDS link's certificates: a small CA (`ca`, in process; `isolated`, signing in a child
process so the manager never loads `cryptography`), what both issue and when a leaf is due
(`model`), who a certificate says it is (`identity`), and the files Envoy reads them from
(`files`). Below every layer that issues or checks them."""
