/* plot.c — the report's plots, drawn with cairo as PNG and SVG: accuracy against compression ratio with
 * the Pareto front, and latency per method (p50 with the p10–p90 spread). */
#include "pq-private.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  const char *name;
  double x, y, lo, hi;
  gboolean front;
} Point;


static void text(cairo_t *cr, double x, double y, const char *s, double size, int align) { /* align: 0 left, 1 centre, 2 right */
  cairo_set_font_size(cr, size);
  cairo_text_extents_t e;
  cairo_text_extents(cr, s, &e);
  cairo_move_to(cr, x - (align == 1 ? e.width / 2 : align == 2 ? e.width : 0), y);
  cairo_show_text(cr, s);
}

/* A "nice" axis range and step. */
static void nice_range(double lo, double hi, double *a, double *b, double *step) {
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  double span = hi - lo, raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
  *step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  *a = floor(lo / *step) * *step;
  *b = ceil(hi / *step) * *step;
}

static void frame(cairo_t *cr, double w, double h, double l, double t, double r, double bt, const char *title, const char *xl,
                  const char *yl) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  text(cr, w / 2, 24, title, 15, 1);
  text(cr, (l + w - r) / 2, h - 12, xl, 12, 1);
  cairo_save(cr);
  cairo_translate(cr, 16, (t + h - bt) / 2);
  cairo_rotate(cr, -G_PI / 2);
  text(cr, 0, 0, yl, 12, 1);
  cairo_restore(cr);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, l, t, w - l - r, h - t - bt);
  cairo_stroke(cr);
}

static void draw_accuracy(cairo_t *cr, double w, double h, Point *p, int n) {
  const double l = 70, t = 40, r = 30, bt = 50;
  frame(cr, w, h, l, t, r, bt, "Accuracy against compression ratio (Pareto front in red)", "compression ratio (bytes, x)", "top-1 accuracy (%)");
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int i = 0; i < n; i++) {
    x0 = fmin(x0, p[i].x);
    x1 = fmax(x1, p[i].x);
    y0 = fmin(y0, p[i].y);
    y1 = fmax(y1, p[i].y);
  }
  double xa, xb, xs, ya, yb, ys;
  nice_range(fmin(x0, 1.0), x1, &xa, &xb, &xs);
  nice_range(y0 - 0.5, y1 + 0.5, &ya, &yb, &ys);
#define PX(v) (l + ((v) - xa) / (xb - xa) * (w - l - r))
#define PY(v) (h - bt - ((v) - ya) / (yb - ya) * (h - t - bt))
  char buf[32];
  cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
  for (double v = xa; v <= xb + 1e-9; v += xs) {
    cairo_move_to(cr, PX(v), t);
    cairo_line_to(cr, PX(v), h - bt);
  }
  for (double v = ya; v <= yb + 1e-9; v += ys) {
    cairo_move_to(cr, l, PY(v));
    cairo_line_to(cr, w - r, PY(v));
  }
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  for (double v = xa; v <= xb + 1e-9; v += xs) {
    g_snprintf(buf, sizeof buf, "%g", v);
    text(cr, PX(v), h - bt + 16, buf, 10, 1);
  }
  for (double v = ya; v <= yb + 1e-9; v += ys) {
    g_snprintf(buf, sizeof buf, "%g", v);
    text(cr, l - 6, PY(v) + 4, buf, 10, 2);
  }
  /* the front: no other point has both a higher ratio and a higher accuracy */
  for (int i = 0; i < n; i++) {
    p[i].front = TRUE;
    for (int j = 0; j < n; j++)
      if (j != i && p[j].x >= p[i].x && p[j].y >= p[i].y && (p[j].x > p[i].x || p[j].y > p[i].y)) p[i].front = FALSE;
  }
  int order[64], m = 0;
  for (int i = 0; i < n && m < 64; i++)
    if (p[i].front) order[m++] = i;
  for (int i = 1; i < m; i++)
    for (int j = i; j > 0 && p[order[j - 1]].x > p[order[j]].x; j--) {
      int tmp = order[j];
      order[j] = order[j - 1];
      order[j - 1] = tmp;
    }
  cairo_set_source_rgb(cr, 0.85, 0.15, 0.1);
  cairo_set_line_width(cr, 1.5);
  double dash[2] = {5, 3};
  cairo_set_dash(cr, dash, 2, 0);
  for (int i = 0; i < m; i++) {
    if (i == 0) cairo_move_to(cr, PX(p[order[i]].x), PY(p[order[i]].y));
    else cairo_line_to(cr, PX(p[order[i]].x), PY(p[order[i]].y));
  }
  cairo_stroke(cr);
  cairo_set_dash(cr, NULL, 0, 0);
  for (int i = 0; i < n; i++) {
    cairo_arc(cr, PX(p[i].x), PY(p[i].y), 4.5, 0, 2 * G_PI);
    if (p[i].front) cairo_set_source_rgb(cr, 0.85, 0.15, 0.1);
    else cairo_set_source_rgb(cr, 0.2, 0.35, 0.7);
    cairo_fill(cr);
  }
  /* labels where they cover no other label and no point: beside the point first, then further up or down
     with a thin line back to it; the front's labels are placed first */
  double boxes[128][4]; /* x0, y0, x1, y1 of the labels placed */
  int nb = 0;
  cairo_set_font_size(cr, 10);
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < n; i++) {
      if (p[i].front != (pass == 0)) continue;
      cairo_text_extents_t e;
      cairo_text_extents(cr, p[i].name, &e);
      double px = PX(p[i].x), py = PY(p[i].y), bx = 0, by = 0, th = 11;
      int found = 0;
      for (int k = 0; k < 24 && !found; k++) { /* rows: 0, −1, +1, −2, +2, …; each on the right, then on the left */
        int row = (k / 2 + 1) / 2 * ((k / 2) % 2 ? -1 : 1);
        double y1 = py - 2 + row * th, y0 = y1 - th + 2;
        double x0 = k % 2 ? px - 7 - e.width : px + 7;
        if (x0 < l + 2 || x0 + e.width > w - r - 2 || y0 < t + 2 || y1 > h - bt - 2) continue;
        int clear = 1;
        for (int j = 0; j < nb && clear; j++)
          clear = x0 + e.width < boxes[j][0] || x0 > boxes[j][2] || y1 < boxes[j][1] || y0 > boxes[j][3];
        for (int j = 0; j < n && clear; j++) /* the points (its own included: the text starts beside it) */
          clear = PX(p[j].x) + 5 < x0 || PX(p[j].x) - 5 > x0 + e.width || PY(p[j].y) + 5 < y0 || PY(p[j].y) - 5 > y1;
        if (clear) bx = x0, by = y1, found = 1;
      }
      if (!found) bx = px + 7, by = py - 2; /* crowded everywhere: beside it anyway */
      if (nb < 128) boxes[nb][0] = bx, boxes[nb][1] = by - th + 2, boxes[nb][2] = bx + e.width, boxes[nb][3] = by, nb++;
      cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
      if (fabs(by - 2 - py) > th) { /* moved away: a line from the point to the label */
        cairo_set_line_width(cr, 0.6);
        cairo_move_to(cr, px, py);
        cairo_line_to(cr, bx < px ? bx + e.width : bx, by - 4);
        cairo_stroke(cr);
      }
      cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      text(cr, bx, by, p[i].name, 10, 0);
    }
#undef PX
#undef PY
}

/* The latency plot: a panel a batch size, each method's p50 (dot) and p10–p90 spread (bar), the baseline's
 * p50 as a dashed line; the axis in µs or ms, logarithmic when the times span more than 20× (a slow method
 * would otherwise squeeze the others against zero). */
typedef struct {
  long batch;
  Point p[64];
  int n;
} LatPanel;

typedef struct {
  LatPanel panel[4];
  int n;
} LatPlot;

#define LAT_ROW 26.0  /* px a method */
#define LAT_GAP 64.0  /* px above and below a panel's rows: its title and its axis labels */

static double lat_height(const LatPlot *lp) {
  double h = 50;
  for (int k = 0; k < lp->n; k++) h += lp->panel[k].n * LAT_ROW + LAT_GAP;
  return h + 20;
}

static void draw_panel(cairo_t *cr, double w, double top, const LatPanel *pn, double l, double r) {
  const Point *p = pn->p;
  int n = pn->n;
  double lo = INFINITY, hi = 0, base = NAN;
  for (int i = 0; i < n; i++) {
    lo = fmin(lo, p[i].lo);
    hi = fmax(hi, p[i].hi);
    if (!strcmp(p[i].name, "baseline")) base = p[i].y;
  }
  const double scale = hi < 1 ? 1e3 : 1; /* shown in µs below a millisecond */
  const gboolean logx = lo > 0 && hi / lo > 20;
  double xa, xb, xs = 1;
  if (logx) {
    xa = floor(log10(lo * scale));
    xb = ceil(log10(hi * scale));
  } else {
    nice_range(0, hi * scale * 1.05, &xa, &xb, &xs);
    xa = 0;
  }
  const double t = top + 24, b = t + n * LAT_ROW;
#define PX(v) (l + ((logx ? log10((v)*scale) : (v)*scale) - xa) / (xb - xa) * (w - l - r))
  char buf[48];
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  g_snprintf(buf, sizeof buf, "batch %ld%s", pn->batch, logx ? " (log scale)" : "");
  text(cr, l, top + 16, buf, 12, 0);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, l, t, w - l - r, b - t);
  cairo_stroke(cr);
  /* grid and tick labels: decades and their 2x and 5x on a log axis, "nice" steps otherwise */
  for (double v = xa; v <= xb + 1e-9; v += logx ? 1 : xs)
    for (int m = 1; m <= (logx ? 5 : 1); m += (m == 1 ? 1 : 3)) {
      double at = logx ? pow(10, v) * m : v, x = logx ? l + (log10(at) - xa) / (xb - xa) * (w - l - r) : l + (v - xa) / (xb - xa) * (w - l - r);
      if (x > w - r + 0.5) continue;
      cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
      cairo_move_to(cr, x, t);
      cairo_line_to(cr, x, b);
      cairo_stroke(cr);
      cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
      g_snprintf(buf, sizeof buf, "%g", at);
      text(cr, x, b + 14, buf, 10, 1);
    }
  text(cr, (l + w - r) / 2, b + 30, scale > 1 ? "microseconds per run" : "milliseconds per run", 11, 1);
  if (!isnan(base)) { /* the baseline's median through the whole panel */
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    double dash[2] = {4, 3};
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, PX(base), t);
    cairo_line_to(cr, PX(base), b);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
  }
  for (int i = 0; i < n; i++) {
    double y = t + LAT_ROW * (i + 0.5);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, l - 8, y + 4, p[i].name, 11, 2);
    cairo_set_source_rgb(cr, 0.2, 0.35, 0.7);
    cairo_set_line_width(cr, 3);
    cairo_move_to(cr, PX(p[i].lo), y);
    cairo_line_to(cr, PX(p[i].hi), y);
    cairo_stroke(cr);
    cairo_arc(cr, PX(p[i].y), y, 5, 0, 2 * G_PI);
    cairo_set_source_rgb(cr, 0.85, 0.15, 0.1);
    cairo_fill(cr);
  }
#undef PX
}

static void draw_latency(cairo_t *cr, double w, double h, void *data) {
  const LatPlot *lp = data;
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  text(cr, w / 2, 24, "Latency per method: p50 (dot), p10-p90 (bar), the baseline's p50 (dashed)", 15, 1);
  double top = 40;
  for (int k = 0; k < lp->n; k++) {
    draw_panel(cr, w, top, &lp->panel[k], 130, 30);
    top += lp->panel[k].n * LAT_ROW + LAT_GAP;
  }
  (void)h;
}

typedef void (*DrawFn)(cairo_t *, double, double, void *);

typedef struct {
  Point *p;
  int n;
} AccPlot;

static void draw_acc_adapter(cairo_t *cr, double w, double h, void *data) {
  AccPlot *a = data;
  draw_accuracy(cr, w, h, a->p, a->n);
}

/* Both formats, each written beside its final name and renamed into place. */
static gboolean render(const char *dir, const char *base, DrawFn draw, void *data, double h, GError **error) {
  const double w = 760;
  const char *ext[2] = {"png", "svg"};
  for (int k = 0; k < 2; k++) {
    g_autofree char *final = g_strdup_printf("%s/%s.%s", dir, base, ext[k]);
    g_autofree char *tmp = g_strdup_printf("%s/.%s.%s.tmp", dir, base, ext[k]);
    cairo_surface_t *s = k == 0 ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)w, (int)h) : cairo_svg_surface_create(tmp, w, h);
    cairo_t *cr = cairo_create(s);
    draw(cr, w, h, data);
    cairo_destroy(cr);
    cairo_status_t st = k == 0 ? cairo_surface_write_to_png(s, tmp) : CAIRO_STATUS_SUCCESS;
    cairo_surface_finish(s);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS || rename(tmp, final) != 0) {
      g_unlink(tmp);
      g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "%s: cannot write the plot: %s", final,
                  st != CAIRO_STATUS_SUCCESS ? cairo_status_to_string(st) : g_strerror(errno));
      return FALSE;
    }
  }
  return TRUE;
}

gboolean pq_plot_write(GPtrArray *results, const char *dir, GError **error) {
  Point acc[64];
  int na = 0;
  /* the latency panels: each batch size the methods were timed at, smallest first (four at most) */
  LatPlot *lp = g_new0(LatPlot, 1);
  for (guint i = 0; i < results->len; i++) {
    JsonObject *m = pq_result_row_metrics(results->pdata[i]);
    if (!m) continue;
    g_autoptr(GList) keys = json_object_get_members(m);
    for (GList *l = keys; l; l = l->next) {
      long b;
      char rest[16];
      if (sscanf(l->data, "latency.b%ld.%15s", &b, rest) != 2 || strcmp(rest, "p50_ms")) continue;
      int at = 0;
      while (at < lp->n && lp->panel[at].batch < b) at++;
      if ((at < lp->n && lp->panel[at].batch == b) || at >= 4) continue;
      if (lp->n == 4) lp->n--; /* (the largest makes room) */
      memmove(&lp->panel[at + 1], &lp->panel[at], sizeof(LatPanel) * (size_t)(lp->n - at));
      lp->panel[at] = (LatPanel){.batch = b};
      lp->n++;
    }
  }
  for (guint i = 0; i < results->len; i++) {
    JsonObject *row = results->pdata[i];
    const char *name = json_object_get_string_member_with_default(row, "method", "?");
    double x = pq_result_metric(row, "metrics.compression_ratio"), y = pq_result_metric(row, "accuracy.top1");
    if (!isnan(x) && !isnan(y) && na < 64) acc[na++] = (Point){name, x, y, 0, 0, FALSE};
    for (int k = 0; k < lp->n; k++) {
      char k50[64], k10[64], k90[64];
      g_snprintf(k50, sizeof k50, "latency.b%ld.p50_ms", lp->panel[k].batch);
      g_snprintf(k10, sizeof k10, "latency.b%ld.p10_ms", lp->panel[k].batch);
      g_snprintf(k90, sizeof k90, "latency.b%ld.p90_ms", lp->panel[k].batch);
      double p50 = pq_result_metric(row, k50), p10 = pq_result_metric(row, k10), p90 = pq_result_metric(row, k90);
      LatPanel *pn = &lp->panel[k];
      if (!isnan(p50) && pn->n < 64) pn->p[pn->n++] = (Point){name, 0, p50, isnan(p10) ? p50 : p10, isnan(p90) ? p50 : p90, FALSE};
    }
  }
  AccPlot ap = {acc, na};
  gboolean ok = render(dir, "accuracy_vs_compression", draw_acc_adapter, &ap, 480, error) &&
                render(dir, "latency", draw_latency, lp, lat_height(lp), error);
  g_free(lp);
  return ok;
}
