"""The xDS link's certificates: a small CA (`ca`), who a certificate says it is (`identity`), and
the files Envoy reads them from (`files`). Below every layer that issues or checks them."""
