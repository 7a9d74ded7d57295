module kubelb.local/cert-manager-crds

go 1.24

require github.com/cert-manager/cert-manager v1.21.0
