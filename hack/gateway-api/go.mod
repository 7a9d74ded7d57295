module kubelb.local/gateway-api-crds

go 1.24

require sigs.k8s.io/gateway-api v1.5.1
