// A few builders for Grafana dashboard JSON (schemaVersion 41), enough for this mixin. Panels
// query the `${datasource}` variable, so the dashboard works with kube-prometheus ("prometheus")
// and kube-prometheus-stack ("Prometheus") alike. Every panel names its one unit: a panel's
// queries must all measure the same thing (seconds, a count, or a rate per second).
{
  local datasource = { type: 'prometheus', uid: '${datasource}' },

  target(expr, legend='', refId='A'):: {
    datasource: datasource,
    expr: expr,
    legendFormat: legend,
    range: true,
    refId: refId,
  },

  // One row per series at the end of the range, its labels as columns.
  tableTarget(expr):: {
    datasource: datasource,
    expr: expr,
    format: 'table',
    instant: true,
    range: false,
    refId: 'A',
  },

  local fieldConfig(unit, min=null, thresholds=null) = {
    defaults: {
      unit: unit,
      color: { mode: 'palette-classic' },
      thresholds: if thresholds == null then {
        mode: 'absolute',
        steps: [{ color: 'green', value: null }],
      } else thresholds,
    } + (if min == null then {} else { min: min }),
    overrides: [],
  },

  local legend = { displayMode: 'list', placement: 'bottom', showLegend: true, calcs: [] },
  local tooltip = { mode: 'multi', sort: 'desc' },

  local panel(type, title, description, targets, pos) = {
    type: type,
    title: title,
    description: description,
    datasource: datasource,
    targets: [targets[i] { refId: std.char(65 + i) } for i in std.range(0, std.length(targets) - 1)],
    gridPos: pos,
  },

  pos(x, y, w, h):: { x: x, y: y, w: w, h: h },

  timeseries(title, description, targets, pos, unit, min=null, thresholds=null)::
    panel('timeseries', title, description, targets, pos) {
      fieldConfig: fieldConfig(unit, min, thresholds),
      options: { legend: legend, tooltip: tooltip },
    },

  stat(title, description, targets, pos, unit)::
    panel('stat', title, description, targets, pos) {
      fieldConfig: fieldConfig(unit),
      options: {
        colorMode: 'value',
        graphMode: 'none',
        justifyMode: 'auto',
        orientation: 'auto',
        percentChangeColorMode: 'standard',
        showPercentChange: false,
        textMode: 'value_and_name',
        wideLayout: true,
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      },
    },

  stateTimeline(title, description, targets, pos, unit)::
    panel('state-timeline', title, description, targets, pos) {
      fieldConfig: fieldConfig(unit) + {
        defaults+: { color: { mode: 'continuous-GrYlRd' } },
      },
      options: {
        alignValue: 'left',
        mergeValues: true,
        rowHeight: 0.8,
        showValue: 'never',
        legend: legend,
        tooltip: tooltip,
      },
    },

  // `columns`: [label, heading] pairs, the label columns to show in order; then the value.
  table(title, description, target, pos, unit, columns, valueHeading)::
    local shown = columns + [['Value', valueHeading]];
    panel('table', title, description, [target], pos) {
      fieldConfig: fieldConfig(unit),
      options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
      transformations: [{
        id: 'organize',
        options: {
          excludeByName: { Time: true },
          indexByName: { [shown[i][0]]: i for i in std.range(0, std.length(shown) - 1) },
          renameByName: { [c[0]]: c[1] for c in shown },
        },
      }],
    },

  row(title, y, id):: {
    type: 'row',
    title: title,
    id: id,
    collapsed: false,
    panels: [],
    gridPos: { x: 0, y: y, w: 24, h: 1 },
  },

  datasourceVariable:: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    hide: 0,
    refresh: 1,
    regex: '',
  },

  queryVariable(name, label, query, multi=true, hide=0):: {
    name: name,
    label: label,
    type: 'query',
    datasource: datasource,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
    hide: hide,
    includeAll: multi,
    multi: multi,
    refresh: 2,
    regex: '',
    sort: 1,
  },

  // A hidden text variable: a value set once (mixin config) that the URL may override.
  textVariable(name, label, value):: {
    name: name,
    label: label,
    type: 'textbox',
    query: value,
    current: { text: value, value: value },
    hide: 2,
  },

  // Events from a Prometheus query: one marker (or region) wherever the query has a value.
  // Grafana's Prometheus annotations keep the query in `target` and the formats beside it.
  annotation(name, color, expr, title, text, tags):: {
    name: name,
    datasource: datasource,
    enable: true,
    iconColor: color,
    target: { expr: expr, refId: 'Anno', interval: '' },
    titleFormat: title,
    textFormat: text,
    tagKeys: std.join(',', tags),
    useValueForTime: false,
  },

  link(title, url, tooltip):: {
    title: title,
    type: 'link',
    url: url,
    tooltip: tooltip,
    icon: 'external link',
    targetBlank: true,
    asDropdown: false,
    includeVars: false,
    keepTime: false,
    tags: [],
  },

  dashboard(title, uid, tags, refresh, variables, panels, annotations=[], links=[]):: {
    title: title,
    uid: uid,
    tags: tags,
    refresh: refresh,
    editable: true,
    graphTooltip: 1,
    schemaVersion: 41,
    time: { from: 'now-6h', to: 'now' },
    timezone: 'browser',
    templating: { list: variables },
    annotations: { list: annotations },
    links: links,
    // Numbered in order, so ids stay stable as long as the panel order does.
    panels: [panels[i] { id: i + 1 } for i in std.range(0, std.length(panels) - 1)],
  },
}
