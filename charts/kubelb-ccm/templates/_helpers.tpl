{{- define "kubelb-ccm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubelb-ccm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubelb-ccm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubelb-ccm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubelb-ccm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kubelb-ccm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kubelb-ccm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubelb-ccm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The container args: exactly the flags kubelb's agent accepts. */}}
{{- define "kubelb-ccm.args" -}}
{{- $k := .Values.kubelb -}}
{{- $c := $k.ingressConversion -}}
- --mode=agent
- --kubelb-kubeconfig=/home/nonroot/.kube/kubelb
- --cluster-name={{ required "kubelb.tenantName is required" $k.tenantName }}
- --node-address-type={{ $k.nodeAddressType }}
- --use-loadbalancer-class={{ $k.useLoadBalancerClass }}
- --enable-cloud-provider={{ $k.enableCloudProvider }}
- --enable-gateway-api={{ $k.enableGatewayAPI }}
- --use-gateway-class={{ $k.useGatewayClass }}
- --use-ingress-class={{ $k.useIngressClass }}
- --disable-ingress-controller={{ $k.disableIngressController }}
- --disable-gateway-controller={{ $k.disableGatewayController }}
- --disable-httproute-controller={{ $k.disableHTTPRouteController }}
- --disable-grpcroute-controller={{ $k.disableGRPCRouteController }}
- --enable-secret-synchronizer={{ $k.enableSecretSynchronizer }}
- --install-gateway-api-crds={{ $k.installGatewayAPICRDs }}
- --gateway-api-crds-channel={{ $k.gatewayAPICRDsChannel }}
- --zap-log-level={{ $k.logLevel }}
- --enable-leader-election={{ $k.enableLeaderElection }}
- --metrics-addr=:{{ .Values.metrics.port }}
- --health-probe-bind-address=:{{ .Values.health.port }}
{{- if $c.enabled }}
- --enable-ingress-conversion=true
- --ingress-conversion-only={{ $c.standaloneMode }}
- --conversion-gateway-name={{ $c.gatewayName }}
- --conversion-gateway-namespace={{ $c.gatewayNamespace }}
- --conversion-gateway-class={{ $c.gatewayClass }}
{{- with $c.ingressClass }}
- --conversion-ingress-class={{ . }}
{{- end }}
{{- with $c.domainReplace }}
- --conversion-domain-replace={{ . }}
{{- end }}
{{- with $c.domainSuffix }}
- --conversion-domain-suffix={{ . }}
{{- end }}
{{- with $c.gatewayAnnotations }}
- --conversion-gateway-annotations={{ . }}
{{- end }}
- --conversion-propagate-external-dns-annotations={{ $c.propagateExternalDnsAnnotations }}
- --conversion-disable-envoy-gateway-features={{ $c.disableEnvoyGatewayFeatures }}
- --conversion-copy-tls-secrets={{ $c.copyTLSSecrets }}
{{- end }}
{{- if $k.persistRenewedToken }}
- --kubelb-kubeconfig-secret={{ .Release.Namespace }}/{{ $k.clusterSecretName }}
{{- end }}
{{- with $k.nodeAddressLabelSelector }}
- --node-address-label-selector={{ . }}
{{- end }}
{{- with $k.tokenExpirationSeconds }}
- --kubelb-token-expiration={{ . }}
{{- end }}
{{- range concat ($k.extraArgs | default list) (.Values.extraArgs | default list) }}
- {{ . }}
{{- end }}
{{- end }}
