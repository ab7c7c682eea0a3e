{{- define "bloop.labels" -}}
app.kubernetes.io/name: bloop
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "bloop.container" -}}
{{- $own := .image | default dict }}
{{- $image := merge (deepCopy $own) .root.Values.image }}
{{- $tag := $own.tag | default (printf "%s%s" $image.tag (ternary "-media" "" (eq ($own.target | default "") "media"))) }}
image: "{{ $image.repository }}:{{ $tag }}"
imagePullPolicy: {{ $image.pullPolicy }}
args: [{{ .mode | quote }}, {{ .name | quote }}]
ports:
  - {name: http, containerPort: {{ include "bloop.port" .root }}}
envFrom:
  - configMapRef: {name: {{ .root.Release.Name }}-settings}
  - secretRef: {name: {{ .root.Values.linkSecretsName | default (printf "%s-link-secrets" .root.Release.Name) }}}
  - secretRef: {name: {{ .root.Values.secretName }}, optional: true}
{{- $env := list }}
{{- if and (eq .mode "serve") (eq .name "ai") .root.Values.workers.ai (not (hasKey .root.Values.settings "BLOOP_AI_RUN_JOBS")) }}
{{- $env = append $env (dict "name" "BLOOP_AI_RUN_JOBS" "value" "false") }}
{{- else if and (eq .mode "worker") (eq .name "ai") }}
{{- /* A worker there for the jobs runs them, whatever the settings say for the service. */}}
{{- $env = append $env (dict "name" "BLOOP_AI_RUN_JOBS" "value" "true") }}
{{- end }}
{{- if .search }}
{{- $env = append $env (dict "name" "BLOOP_SEARCH_DIRECTORY" "value" (printf "%s/index" (include "bloop.searchMount" .))) }}
{{- end }}
{{- with $env }}
env: {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .search }}
volumeMounts:
  - {name: search-index, mountPath: {{ include "bloop.searchMount" . }}}
{{- end }}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
{{- $startup := .root.Values.startupProbe }}
{{- if kindIs "map" $startup }}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: {{ $startup.periodSeconds | default 10 }}
  timeoutSeconds: 5
  failureThreshold: {{ $startup.failureThreshold | default 60 }}
{{- end }}
{{- with .root.Values.preStopSleepSeconds }}
lifecycle:
  preStop:
    exec: {command: [sleep, {{ . | quote }}]}
{{- end }}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
readinessProbe:
  httpGet: {path: "/readyz?scope=process", port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
resources: {{- toYaml (.resources | default .root.Values.resources) | nindent 2 }}
{{- end -}}


{{- define "bloop.port" -}}
{{ .Values.settings.BLOOP_HTTP_PORT | default 8000 }}
{{- end -}}


{{- /* The volume for content's search index in a pod of `name` (nothing where it has none). */}}
{{- define "bloop.searchVolume" -}}
{{- if and (eq .name "content") (not (hasKey .root.Values.settings "BLOOP_SEARCH_DIRECTORY")) }}
{{- with dig "volume" dict (.root.Values.searchIndex | default dict) }}{{ toYaml . }}{{ end }}
{{- end }}
{{- end -}}

{{- define "bloop.searchMount" -}}
/var/lib/bloop/search
{{- end -}}


{{- /* See values.yaml. */}}
{{- define "bloop.gracePeriod" -}}
{{- $settings := .Values.settings }}
{{- $shutdown := int ($settings.BLOOP_HTTP_SHUTDOWN_TIMEOUT_S | default 20) }}
{{- $publish := div (add (int ($settings.BLOOP_KAFKA_REQUEST_TIMEOUT_MS | default 10000)) 999) 1000 }}
{{- $derived := add (int (.Values.preStopSleepSeconds | default 0)) $shutdown 5 $publish 5 }}
{{- $set := .Values.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $set }}{{ $derived }}{{ else }}{{ int $set }}{{ end }}
{{- end -}}
