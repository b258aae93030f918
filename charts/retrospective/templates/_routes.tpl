{{/*
The paths the Ingress and the HTTPRoute route: the lock API, the WebSocket and the management
view. Nothing else (in particular /metrics, which lives on its own port anyway).
*/}}
{{- define "retrospective.routes" -}}
- {path: /retrospective/, type: Prefix}
- {path: /locks/, type: Prefix}
- {path: /locks, type: Exact}
- {path: /ws, type: Exact, websocket: true}
- {path: /, type: Exact}
- {path: /view.js, type: Exact}
- {path: /view.css, type: Exact}
- {path: /openapi.json, type: Exact}
- {path: /ping, type: Exact}
- {path: /api/me, type: Exact}
{{- end -}}
