{{- define "bloop.labels" -}}
app.kubernetes.io/name: bloop
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "bloop.container" -}}
image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
args: [{{ .mode | quote }}, {{ .name | quote }}]
ports:
  - {name: http, containerPort: 8000}
envFrom:
  - configMapRef: {name: {{ .root.Release.Name }}-settings}
  - secretRef: {name: {{ .root.Values.secretName }}, optional: true}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  failureThreshold: 3
resources: {{- toYaml .root.Values.resources | nindent 2 }}
{{- end -}}
