{{- define "kubelb-manager.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubelb-manager.fullname" -}}
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

{{- define "kubelb-manager.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubelb-manager.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubelb-manager.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kubelb-manager.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kubelb-manager.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubelb-manager.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The container args: exactly the flags kubelb's manager accepts. */}}
{{- define "kubelb-manager.args" -}}
{{- $k := .Values.kubelb -}}
- --mode=manager
- --enable-leader-election={{ $k.enableLeaderElection }}
- --enable-gateway-api={{ $k.enableGatewayAPI }}
- --enable-tenant-migration={{ $k.enableTenantMigration }}
- --debug={{ $k.debug }}
- --zap-log-level={{ $k.logLevel }}
- --metrics-addr=:{{ .Values.metrics.port }}
- --health-probe-bind-address=:{{ .Values.health.port }}
{{- if ne (int .Values.service.port) 8001 }}
- --envoy-xds-port={{ .Values.service.port }}
{{- end }}
{{- if ne $k.envoyDeployer "kubernetes" }}
- --envoy-deployer={{ $k.envoyDeployer }}
{{- end }}
{{- with $k.addressPool }}
- --address-pool={{ join "," . }}
{{- end }}
{{- if $k.xdsDelta }}
- --xds-delta=true
{{- end }}
{{- if not $k.xdsTLS }}
- --xds-tls=false
{{- end }}
{{- if ne $k.tenantToken "bound" }}
- --tenant-token={{ $k.tenantToken }}
{{- end }}
{{- with $k.tenantAPIServer }}
- --tenant-api-server={{ . }}
{{- end }}
{{- with $k.serviceCIDRs }}
- --service-cidr={{ join "," . }}
{{- end }}
{{- with $k.podCIDRs }}
- --pod-cidr={{ join "," . }}
{{- end }}
{{- with $k.envoyImage }}
- --envoy-image={{ . }}
{{- end }}
{{- with $k.envoyShutdownManagerImage }}
- --envoy-shutdown-manager-image={{ . }}
{{- end }}
{{- range concat ($k.extraArgs | default list) (.Values.extraArgs | default list) }}
- {{ . }}
{{- end }}
{{- end }}
