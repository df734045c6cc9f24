{{/* Chart name. */}}
{{- define "shop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: <release>-shop unless overridden. */}}
{{- define "shop.fullname" -}}
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

{{/* Name of one service's resources: <fullname>-<service>. Takes (dict "root" $ "name" "auth"). */}}
{{- define "shop.component" -}}
{{- printf "%s-%s" (include "shop.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "shop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "shop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shop
{{- end }}

{{/* Selector labels of one service. Takes (dict "root" $ "name" "auth"). */}}
{{- define "shop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shop.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* All labels of one service's resources. */}}
{{- define "shop.componentLabels" -}}
{{ include "shop.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Image of one service. */}}
{{- define "shop.image" -}}
{{- printf "%s/shop-%s-svc:%s" .root.Values.image.registry .name (default .root.Chart.AppVersion .root.Values.image.tag) }}
{{- end }}

{{- define "shop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ include "shop.fullname" . }}{{ else }}default{{ end }}
{{- end }}

{{/* Secret names and keys. */}}
{{- define "shop.postgresSecret" -}}
{{- default (printf "%s-postgres" (include "shop.fullname" .)) .Values.postgres.existingSecret }}
{{- end }}
{{- define "shop.rabbitmqSecret" -}}
{{- default (printf "%s-rabbitmq" (include "shop.fullname" .)) .Values.rabbitmq.existingSecret }}
{{- end }}
{{- define "shop.redisSecret" -}}
{{- default (printf "%s-redis" (include "shop.fullname" .)) .Values.redis.existingSecret }}
{{- end }}
{{- define "shop.jwtSecret" -}}
{{- default (printf "%s-jwt" (include "shop.fullname" .)) .Values.jwt.existingSecret }}
{{- end }}
{{- define "shop.databaseKey" -}}
{{- if eq . "order" }}orders-database-url{{ else }}{{ . }}-database-url{{ end }}
{{- end }}

{{/* The data of the chart-made PostgreSQL Secret (shared by the Secret and the migration hook's copy). */}}
{{- define "shop.postgresSecretData" -}}
auth-database-url: {{ required "postgres.urls.auth is required" .Values.postgres.urls.auth | b64enc | quote }}
catalog-database-url: {{ required "postgres.urls.catalog is required" .Values.postgres.urls.catalog | b64enc | quote }}
orders-database-url: {{ required "postgres.urls.orders is required" .Values.postgres.urls.orders | b64enc | quote }}
{{- end }}

{{/* Pod-level security settings. */}}
{{- define "shop.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security settings. */}}
{{- define "shop.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The environment every container of one service gets besides its ConfigMap. */}}
{{- define "shop.secretEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "shop.postgresSecret" .root }}
      key: {{ include "shop.databaseKey" .name }}
- name: AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "shop.rabbitmqSecret" .root }}
      key: amqp-url
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "shop.redisSecret" .root }}
      key: redis-url
- name: REDIS_TIMEOUT_MS
  value: {{ .root.Values.redis.timeoutMs | quote }}
{{- end }}
