/* safetensors.c — model files: safetensors with the graph and packing descriptions in __metadata__.
 * Layout: u64 little-endian header length N, N bytes of JSON header (padded with spaces), then the data
 * buffer, which the tensors' data_offsets must cover exactly, without gaps or overlaps. */
#include "../pq-private.h"

#include <json-glib/json-glib.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK(pq-format-error-quark, pq_format_error)

#define PQ_ST_MAX_HEADER (100u * 1024u * 1024u)

#define FAIL(code, ...)                                                                                            \
  do {                                                                                                             \
    g_autofree char *msg_ = g_strdup_printf(__VA_ARGS__);                                                          \
    g_set_error(error, PQ_FORMAT_ERROR, code, "%s: %s", path, msg_);                                               \
    return NULL;                                                                                                   \
  } while (0)

static const struct {
  const char *name;
  PqDType dtype;
} st_dtypes[] = {{"F32", PQ_DTYPE_F32}, {"F16", PQ_DTYPE_F16}, {"BF16", PQ_DTYPE_BF16}, {"I8", PQ_DTYPE_I8},
                 {"U8", PQ_DTYPE_U8},   {"I32", PQ_DTYPE_I32}, {"I64", PQ_DTYPE_I64},
                 {"U16", PQ_DTYPE_U16}};
static const char *const st_other_dtypes[] = {"BOOL", "F64", "I16", "U32", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};

typedef struct {
  const char *name;
  PqDType dtype;
  int ndim;
  int64_t shape[PQ_MAX_DIMS];
  uint64_t begin, end;
} Entry;

/* Counts member emissions per JSON object so duplicates (which json-glib silently merges) are caught. */
static void on_member(JsonParser *p, JsonObject *obj, const char *name, gpointer user_data) {
  (void)p;
  (void)name;
  GHashTable *counts = user_data;
  g_hash_table_insert(counts, obj, GINT_TO_POINTER(GPOINTER_TO_INT(g_hash_table_lookup(counts, obj)) + 1));
}

static gboolean find_duplicate(GHashTable *counts, JsonObject *obj, const char **dup) {
  guint seen = (guint)GPOINTER_TO_INT(g_hash_table_lookup(counts, obj));
  if (seen == json_object_get_size(obj)) return FALSE;
  *dup = NULL;
  return TRUE;
}

static int cmp_entry(gconstpointer a, gconstpointer b) {
  const Entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static gboolean json_u64(JsonNode *n, int64_t *out) {
  if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64) return FALSE;
  *out = json_node_get_int(n);
  return *out >= 0;
}

static gboolean parse_scheme(const char *s, PqQuantScheme *out) {
  for (int i = PQ_QUANT_PER_TENSOR; i <= PQ_QUANT_PER_GROUP; i++)
    if (!g_strcmp0(s, pq_quant_scheme_name((PqQuantScheme)i))) {
      *out = (PqQuantScheme)i;
      return TRUE;
    }
  return FALSE;
}

/* Replace U8 blobs described in pquant.packed by packed tensors carrying their scales and zero points. */
static PqModel *apply_packed(PqModel *model, const char *path, const char *json, GError **error) {
  g_autoptr(PqModel) m = model;
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_data(p, json, -1, &perr))
    FAIL(PQ_FORMAT_ERROR_INVALID, "__metadata__[\"pquant.packed\"] is not JSON: %s", perr->message);
  JsonNode *root = json_parser_get_root(p);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) FAIL(PQ_FORMAT_ERROR_INVALID, "__metadata__[\"pquant.packed\"] must be a JSON object");
  JsonObject *obj = json_node_get_object(root);
  g_autoptr(GList) names = json_object_get_members(obj);
  g_autoptr(GPtrArray) consumed = g_ptr_array_new_with_free_func(g_free);
  /* packed scales (per-group scales quantized themselves) first, so that the tensors whose scales they are find
     them made; one level only */
  g_autoptr(GPtrArray) order = g_ptr_array_new();
  for (int pass = 0; pass < 2; pass++)
    for (GList *l = names; l; l = l->next) {
      JsonNode *dn = json_object_get_member(obj, l->data);
      const char *sn = JSON_NODE_HOLDS_OBJECT(dn) ? json_object_get_string_member_with_default(json_node_get_object(dn), "scales", NULL) : NULL;
      const gboolean scales_packed = sn && json_object_has_member(obj, sn);
      if (scales_packed != pass) continue;
      if (scales_packed) {
        JsonNode *sd = json_object_get_member(obj, sn);
        const char *ssn = JSON_NODE_HOLDS_OBJECT(sd) ? json_object_get_string_member_with_default(json_node_get_object(sd), "scales", NULL) : NULL;
        if (!strcmp(sn, l->data)) FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].scales names the tensor itself", sn);
        if (ssn && json_object_has_member(obj, ssn))
          FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].scales names a packed tensor whose own scales are packed (one level only)",
               (const char *)l->data);
      }
      g_ptr_array_add(order, l->data);
    }
  for (guint li = 0; li < order->len; li++) {
    const char *name = order->pdata[li];
    JsonNode *dn = json_object_get_member(obj, name);
    JsonObject *d = JSON_NODE_HOLDS_OBJECT(dn) ? json_node_get_object(dn) : NULL;
    PqTensor *blob = pq_model_tensor(m, name);
    if (!d) FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"] must be an object", name);
    if (!blob || blob->dtype != PQ_DTYPE_U8) FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"]: no U8 tensor of that name", name);
    int64_t bits = 0, group = 0, shape[PQ_MAX_DIMS];
    if (!json_u64(json_object_get_member(d, "bits"), &bits) || bits < 2 || bits > 8)
      FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].bits must be an integer in 2..8", name);
    JsonNode *sn = json_object_get_member(d, "shape");
    if (!sn || !JSON_NODE_HOLDS_ARRAY(sn) || json_array_get_length(json_node_get_array(sn)) > PQ_MAX_DIMS)
      FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].shape must be an array of at most %d integers", name, PQ_MAX_DIMS);
    int nd = (int)json_array_get_length(json_node_get_array(sn));
    for (int i = 0; i < nd; i++)
      if (!json_u64(json_array_get_element(json_node_get_array(sn), (guint)i), &shape[i]))
        FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].shape[%d] must be a non-negative integer", name, i);
    PqQuantScheme scheme;
    if (!parse_scheme(json_object_get_string_member_with_default(d, "scheme", NULL), &scheme))
      FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].scheme must be per_tensor, per_channel or per_group", name);
    if (scheme == PQ_QUANT_PER_GROUP && !json_u64(json_object_get_member(d, "group_size"), &group))
      FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].group_size must be a positive integer", name);
    const char *sname = json_object_get_string_member_with_default(d, "scales", NULL);
    const char *zname = json_object_get_string_member_with_default(d, "zeros", NULL);
    PqTensor *scales = pq_model_tensor(m, sname);
    PqTensor *zeros = zname ? pq_model_tensor(m, zname) : NULL;
    if (!scales) FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].scales names no tensor", name);
    if (zname && !zeros) FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"].zeros names no tensor", name);
    g_autoptr(GError) qerr = NULL;
    if (!pq_quant_params_valid((int)bits, nd, shape, scheme, group, scales, zeros, &qerr))
      FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"]: %s", name, qerr->message);
    int64_t rows, cols;
    size_t rb, nb;
    pq_packed_layout((int)bits, nd, shape, &rows, &cols, &rb, &nb);
    if (blob->nbytes != nb)
      FAIL(PQ_FORMAT_ERROR_INVALID, "pquant.packed[\"%s\"]: %zu bytes stored, %zu expected for that shape and bit width", name,
           blob->nbytes, nb);
    PqTensor *t = pq_tensor_new_mapped(name, PQ_DTYPE_PACKED, nd, shape, blob->data, blob->nbytes, blob->mapping);
    if (blob->owns_data) { /* an aligned copy: hand the memory over */
      t->owns_data = TRUE;
      blob->owns_data = FALSE;
    }
    t->bits = (int)bits;
    t->scheme = scheme;
    t->group_size = scheme == PQ_QUANT_PER_GROUP ? group : 0;
    t->scales = pq_tensor_ref(scales);
    t->zeros = zeros ? pq_tensor_ref(zeros) : NULL;
    pq_model_set_tensor(m, t);
    pq_tensor_unref(t);
    g_ptr_array_add(consumed, g_strdup(sname));
    if (zname) g_ptr_array_add(consumed, g_strdup(zname));
  }
  for (guint i = 0; i < consumed->len; i++) pq_model_remove_tensor(m, consumed->pdata[i]);
  return g_steal_pointer(&m);
}

PqModel *pq_model_load(const char *path, GError **error) {
  g_return_val_if_fail(path != NULL, NULL);
  if (g_str_has_suffix(path, ".onnx")) return pq_onnx_load(path, error);
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) FAIL(PQ_FORMAT_ERROR_IO, "cannot open: %s", g_strerror(errno));
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    FAIL(PQ_FORMAT_ERROR_IO, "cannot stat: %s", g_strerror(e));
  }
  close(fd);
  if (S_ISDIR(st.st_mode)) FAIL(PQ_FORMAT_ERROR_IO, "is a folder, not a model file");
  if (!S_ISREG(st.st_mode)) FAIL(PQ_FORMAT_ERROR_IO, "is not a regular file");
  if (st.st_size < 8)
    FAIL(PQ_FORMAT_ERROR_INVALID, "file is %lld bytes, too short for the 8-byte header length", (long long)st.st_size);

  g_autoptr(GError) merr = NULL;
  g_autoptr(GMappedFile) mf = g_mapped_file_new(path, FALSE, &merr);
  if (!mf) FAIL(PQ_FORMAT_ERROR_IO, "cannot map: %s", merr->message);
  const guint8 *base = (const guint8 *)g_mapped_file_get_contents(mf);
  uint64_t size = g_mapped_file_get_length(mf);
  if (size < 8) FAIL(PQ_FORMAT_ERROR_INVALID, "file changed while being read");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
  if (hlen > PQ_ST_MAX_HEADER)
    FAIL(PQ_FORMAT_ERROR_INVALID, "header length %" G_GUINT64_FORMAT " exceeds the 100 MB limit", hlen);
  if (hlen > size - 8)
    FAIL(PQ_FORMAT_ERROR_INVALID, "header length %" G_GUINT64_FORMAT " runs past the end of the file (%" G_GUINT64_FORMAT " bytes)",
         hlen, size);
  if (hlen < 2 || base[8] != '{') FAIL(PQ_FORMAT_ERROR_INVALID, "header does not start with '{'");
  const char *hdr = (const char *)base + 8;
  if (!g_utf8_validate(hdr, (gssize)hlen, NULL)) FAIL(PQ_FORMAT_ERROR_INVALID, "header is not valid UTF-8");

  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GHashTable) counts = g_hash_table_new(NULL, NULL);
  g_signal_connect(parser, "object-member", G_CALLBACK(on_member), counts);
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_data(parser, hdr, (gssize)hlen, &perr))
    FAIL(PQ_FORMAT_ERROR_INVALID, "header is not valid JSON: %s", perr->message);
  JsonNode *root = json_parser_get_root(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) FAIL(PQ_FORMAT_ERROR_INVALID, "header is not a JSON object");
  JsonObject *hobj = json_node_get_object(root);
  const char *dup;
  if (find_duplicate(counts, hobj, &dup)) FAIL(PQ_FORMAT_ERROR_INVALID, "header has duplicate tensor names");

  uint64_t data_start = 8 + hlen, data_len = size - data_start;
  const guint8 *data = base + data_start;
  g_autoptr(GArray) entries = g_array_new(FALSE, TRUE, sizeof(Entry));
  g_autoptr(PqModel) model = pq_model_new();
  JsonObject *meta = NULL;

  g_autoptr(GList) members = json_object_get_members(hobj);
  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *n = json_object_get_member(hobj, name);
    if (strcmp(name, "__metadata__") == 0) {
      if (!JSON_NODE_HOLDS_OBJECT(n)) FAIL(PQ_FORMAT_ERROR_INVALID, "__metadata__ must be an object of strings");
      meta = json_node_get_object(n);
      if (find_duplicate(counts, meta, &dup)) FAIL(PQ_FORMAT_ERROR_INVALID, "__metadata__ has duplicate keys");
      continue;
    }
    if (!name[0]) FAIL(PQ_FORMAT_ERROR_INVALID, "a tensor has an empty name");
    if (!JSON_NODE_HOLDS_OBJECT(n)) FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": entry must be an object", name);
    JsonObject *o = json_node_get_object(n);
    if (find_duplicate(counts, o, &dup)) FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": duplicate fields", name);
    Entry e = {.name = name};
    JsonNode *dn = json_object_get_member(o, "dtype");
    const char *dt = dn && JSON_NODE_HOLDS_VALUE(dn) && json_node_get_value_type(dn) == G_TYPE_STRING ? json_node_get_string(dn) : NULL;
    if (!dt) FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"dtype\" is missing or not a string", name);
    gboolean found = FALSE;
    for (size_t i = 0; i < PQ_N_ELEMENTS(st_dtypes); i++)
      if (strcmp(dt, st_dtypes[i].name) == 0) {
        e.dtype = st_dtypes[i].dtype;
        found = TRUE;
      }
    if (!found) {
      for (size_t i = 0; i < PQ_N_ELEMENTS(st_other_dtypes); i++)
        if (strcmp(dt, st_other_dtypes[i]) == 0)
          FAIL(PQ_FORMAT_ERROR_UNSUPPORTED, "tensor \"%s\": field \"dtype\": %s is not supported by pquant", name, dt);
      FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"dtype\": unknown dtype \"%s\"", name, dt);
    }
    JsonNode *sn = json_object_get_member(o, "shape");
    if (!sn || !JSON_NODE_HOLDS_ARRAY(sn)) FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"shape\" must be an array", name);
    JsonArray *sa = json_node_get_array(sn);
    if (json_array_get_length(sa) > PQ_MAX_DIMS)
      FAIL(PQ_FORMAT_ERROR_UNSUPPORTED, "tensor \"%s\": field \"shape\" has more than %d dimensions", name, PQ_MAX_DIMS);
    e.ndim = (int)json_array_get_length(sa);
    for (int i = 0; i < e.ndim; i++)
      if (!json_u64(json_array_get_element(sa, (guint)i), &e.shape[i]))
        FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"shape\"[%d] must be a non-negative integer", name, i);
    JsonNode *on = json_object_get_member(o, "data_offsets");
    JsonArray *oa = on && JSON_NODE_HOLDS_ARRAY(on) ? json_node_get_array(on) : NULL;
    int64_t b0, b1;
    if (!oa || json_array_get_length(oa) != 2 || !json_u64(json_array_get_element(oa, 0), &b0) ||
        !json_u64(json_array_get_element(oa, 1), &b1) || b1 < b0)
      FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"data_offsets\" must be [begin, end] with 0 <= begin <= end", name);
    e.begin = (uint64_t)b0;
    e.end = (uint64_t)b1;
    int64_t numel;
    if (!pq_shape_numel(e.ndim, e.shape, &numel) || (uint64_t)numel > G_MAXUINT64 / pq_dtype_size(e.dtype))
      FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"shape\": element count overflows", name);
    if ((uint64_t)numel * pq_dtype_size(e.dtype) != e.end - e.begin)
      FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"data_offsets\" spans %" G_GUINT64_FORMAT " bytes, shape and dtype need %" G_GUINT64_FORMAT,
           name, e.end - e.begin, (uint64_t)numel * pq_dtype_size(e.dtype));
    if (e.end > data_len)
      FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"data_offsets\" ends at %" G_GUINT64_FORMAT ", past the end of the data (%" G_GUINT64_FORMAT " bytes)",
           name, e.end, data_len);
    g_array_append_val(entries, e);
  }

  /* The data buffer must be covered exactly: no gap, no overlap, no trailing bytes. */
  g_array_sort(entries, cmp_entry);
  uint64_t pos = 0;
  for (guint i = 0; i < entries->len; i++) {
    Entry *e = &g_array_index(entries, Entry, i);
    if (e->begin > pos) FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"data_offsets\" leaves a gap of %" G_GUINT64_FORMAT " bytes before it", e->name, e->begin - pos);
    if (e->begin < pos) FAIL(PQ_FORMAT_ERROR_INVALID, "tensor \"%s\": field \"data_offsets\" overlaps the previous tensor", e->name);
    pos = e->end;
  }
  if (pos != data_len)
    FAIL(PQ_FORMAT_ERROR_INVALID, "%" G_GUINT64_FORMAT " trailing bytes after the last tensor's data", data_len - pos);

  for (guint i = 0; i < entries->len; i++) {
    Entry *e = &g_array_index(entries, Entry, i);
    const guint8 *p = data + e->begin;
    size_t nb = (size_t)(e->end - e->begin);
    PqTensor *t;
    if (((uintptr_t)p % MAX(pq_dtype_size(e->dtype), 1)) == 0) {
      t = pq_tensor_new_mapped(e->name, e->dtype, e->ndim, e->shape, p, nb, mf);
    } else { /* misaligned by another writer: keep an aligned private copy */
      t = pq_tensor_new(e->name, e->dtype, e->ndim, e->shape);
      memcpy(t->data, p, nb);
    }
    pq_model_set_tensor(model, t);
    pq_tensor_unref(t);
  }

  const char *graph_json = NULL, *packed_json = NULL, *records_json = NULL;
  if (meta) {
    g_autoptr(GList) keys = json_object_get_members(meta);
    for (GList *l = keys; l; l = l->next) {
      JsonNode *v = json_object_get_member(meta, l->data);
      if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING)
        FAIL(PQ_FORMAT_ERROR_INVALID, "__metadata__[\"%s\"] must be a string", (const char *)l->data);
      const char *s = json_node_get_string(v);
      if (!strcmp(l->data, "pquant.graph")) graph_json = s;
      else if (!strcmp(l->data, "pquant.packed")) packed_json = s;
      else if (!strcmp(l->data, "pquant.records")) records_json = s;
      else pq_model_set_meta(model, l->data, s);
    }
  }
  if (packed_json) {
    PqModel *m2 = apply_packed(g_steal_pointer(&model), path, packed_json, error);
    if (!m2) return NULL;
    model = m2;
  }
  if (records_json) {
    g_autoptr(GError) rerr = NULL;
    if (!pq_records_from_json(model->records, records_json, &rerr))
      FAIL(PQ_FORMAT_ERROR_INVALID, "__metadata__[\"pquant.records\"]: %s", rerr->message);
  }
  if (graph_json) {
    g_autoptr(GError) gerr = NULL;
    if (!pq_graph_from_json(model->graph, graph_json, &gerr) || !pq_model_validate(model, &gerr))
      FAIL(PQ_FORMAT_ERROR_INVALID, "__metadata__[\"pquant.graph\"]: %s", gerr->message);
  }
  return g_steal_pointer(&model);
}

/* ---- writer ------------------------------------------------------------------------------------------ */

typedef struct {
  const char *name;
  const char *dtype;
  int ndim;
  int64_t shape[PQ_MAX_DIMS];
  const void *data;
  size_t nbytes;
  size_t align;
} OutTensor;

static int cmp_out(gconstpointer a, gconstpointer b) {
  const OutTensor *x = a, *y = b;
  if (x->align != y->align) return x->align > y->align ? -1 : 1; /* widest first keeps every start aligned */
  return strcmp(x->name, y->name);
}

typedef struct {
  GString *header;
  GArray *outs;
} WriteCtx;

static gboolean write_body(FILE *f, gpointer user_data, GError **error) {
  WriteCtx *c = user_data;
  guint8 len[8];
  uint64_t h = c->header->len;
  for (int i = 0; i < 8; i++) len[i] = (guint8)(h >> (8 * i));
  if (fwrite(len, 1, 8, f) != 8 || fwrite(c->header->str, 1, c->header->len, f) != c->header->len) goto fail;
  for (guint i = 0; i < c->outs->len; i++) {
    OutTensor *o = &g_array_index(c->outs, OutTensor, i);
    if (o->nbytes && fwrite(o->data, 1, o->nbytes, f) != o->nbytes) goto fail;
  }
  return TRUE;
fail:
  g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "write failed: %s", g_strerror(errno));
  return FALSE;
}

static void add_out(GArray *outs, const PqTensor *t, const char *name) {
  OutTensor o = {.name = name, .data = t->data, .nbytes = t->nbytes};
  if (t->dtype == PQ_DTYPE_PACKED) {
    o.dtype = "U8";
    o.ndim = 2;
    o.shape[0] = pq_tensor_rows(t);
    o.shape[1] = (int64_t)pq_tensor_row_bytes(t);
    o.align = 1;
  } else {
    o.dtype = pq_dtype_name(t->dtype);
    o.ndim = t->ndim;
    memcpy(o.shape, t->shape, sizeof o.shape);
    o.align = pq_dtype_size(t->dtype);
  }
  g_array_append_val(outs, o);
}

/* pquant.packed's entry for the packed tensor t stored as `name`, its scales as NAME.scales and its zero points as
 * NAME.zeros (their data added to outs, their names to names and used); packed scales get an entry of their own,
 * written first. FALSE with an error where a name is taken. */
static gboolean add_packed(JsonBuilder *pk, GArray *outs, GPtrArray *names, GHashTable *used, const PqTensor *t, const char *name,
                           const char *path, GError **error) {
  char *sname = g_strconcat(name, ".scales", NULL), *zname = t->zeros ? g_strconcat(name, ".zeros", NULL) : NULL;
  g_ptr_array_add(names, sname);
  if (zname) g_ptr_array_add(names, zname);
  if (g_hash_table_contains(used, sname) || (zname && g_hash_table_contains(used, zname))) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: tensor \"%s\": its scales' name is taken by another tensor", path, name);
    return FALSE;
  }
  g_hash_table_add(used, sname);
  add_out(outs, t->scales, sname);
  if (zname) {
    g_hash_table_add(used, zname);
    add_out(outs, t->zeros, zname);
  }
  if (t->scales->dtype == PQ_DTYPE_PACKED && !add_packed(pk, outs, names, used, t->scales, sname, path, error)) return FALSE;
  json_builder_set_member_name(pk, name);
  json_builder_begin_object(pk);
  json_builder_set_member_name(pk, "bits");
  json_builder_add_int_value(pk, t->bits);
  json_builder_set_member_name(pk, "shape");
  json_builder_begin_array(pk);
  for (int d = 0; d < t->ndim; d++) json_builder_add_int_value(pk, t->shape[d]);
  json_builder_end_array(pk);
  json_builder_set_member_name(pk, "scheme");
  json_builder_add_string_value(pk, pq_quant_scheme_name(t->scheme));
  if (t->scheme == PQ_QUANT_PER_GROUP) {
    json_builder_set_member_name(pk, "group_size");
    json_builder_add_int_value(pk, t->group_size);
  }
  json_builder_set_member_name(pk, "scales");
  json_builder_add_string_value(pk, sname);
  if (zname) {
    json_builder_set_member_name(pk, "zeros");
    json_builder_add_string_value(pk, zname);
  }
  json_builder_end_object(pk);
  return TRUE;
}

/* The header (padded) and the tensors in file order; NULL with an error naming `path`. */
static GString *build_header(const PqModel *model, const char *path, GArray *outs, GPtrArray *names, GError **error) {
  g_autoptr(GHashTable) used = g_hash_table_new(g_str_hash, g_str_equal);
  g_autoptr(JsonBuilder) pk = json_builder_new();
  gboolean any_packed = FALSE;
  json_builder_begin_object(pk);
  for (size_t i = 0; i < pq_model_n_tensors(model); i++) g_hash_table_add(used, (gpointer)pq_model_tensor_at(model, i)->name);
  for (size_t i = 0; i < pq_model_n_tensors(model); i++) {
    const PqTensor *t = pq_model_tensor_at(model, i);
    add_out(outs, t, t->name);
    if (t->dtype != PQ_DTYPE_PACKED) continue;
    any_packed = TRUE;
    if (!add_packed(pk, outs, names, used, t, t->name, path, error)) return NULL;
  }
  json_builder_end_object(pk);
  g_array_sort(outs, cmp_out);

  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "__metadata__");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "format");
  json_builder_add_string_value(b, "pt");
  json_builder_set_member_name(b, "pquant.format_version");
  json_builder_add_string_value(b, "1");
  g_autoptr(GList) mkeys = g_hash_table_get_keys(model->meta);
  mkeys = g_list_sort(mkeys, (GCompareFunc)strcmp);
  for (GList *l = mkeys; l; l = l->next) {
    const char *k = l->data;
    if (!strcmp(k, "format") || !strcmp(k, "pquant.format_version") || !strcmp(k, "pquant.graph") || !strcmp(k, "pquant.packed") ||
        !strcmp(k, "pquant.records"))
      continue;
    json_builder_set_member_name(b, k);
    json_builder_add_string_value(b, g_hash_table_lookup(model->meta, k));
  }
  const char *bad_node, *bad_key;
  if (!pq_graph_attrs_finite(model->graph, &bad_node, &bad_key)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: node '%s': attribute \"%s\" is not a finite number (NaN or infinite)",
                path, bad_node, bad_key);
    return NULL;
  }
  if (pq_graph_n_nodes(model->graph) || pq_graph_n_inputs(model->graph)) {
    g_autofree char *gj = pq_graph_to_json(model->graph);
    json_builder_set_member_name(b, "pquant.graph");
    json_builder_add_string_value(b, gj);
  }
  if (model->records->len) {
    g_autofree char *rj = pq_records_to_json(model->records);
    json_builder_set_member_name(b, "pquant.records");
    json_builder_add_string_value(b, rj);
  }
  if (any_packed) {
    g_autoptr(JsonNode) pn = json_builder_get_root(pk);
    g_autofree char *pj = json_to_string(pn, FALSE);
    json_builder_set_member_name(b, "pquant.packed");
    json_builder_add_string_value(b, pj);
  }
  json_builder_end_object(b);
  uint64_t off = 0;
  for (guint i = 0; i < outs->len; i++) {
    OutTensor *o = &g_array_index(outs, OutTensor, i);
    json_builder_set_member_name(b, o->name);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "dtype");
    json_builder_add_string_value(b, o->dtype);
    json_builder_set_member_name(b, "shape");
    json_builder_begin_array(b);
    for (int d = 0; d < o->ndim; d++) json_builder_add_int_value(b, o->shape[d]);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "data_offsets");
    json_builder_begin_array(b);
    json_builder_add_int_value(b, (gint64)off);
    json_builder_add_int_value(b, (gint64)(off + o->nbytes));
    json_builder_end_array(b);
    json_builder_end_object(b);
    off += o->nbytes;
  }
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  g_autofree char *text = json_to_string(root, FALSE);
  GString *header = g_string_new(text);
  while ((8 + header->len) % 8) g_string_append_c(header, ' ');
  return header;
}

gboolean pq_model_save(const PqModel *model, const char *path, GError **error) {
  g_return_val_if_fail(model && path, FALSE);
  g_autoptr(GArray) outs = g_array_new(FALSE, TRUE, sizeof(OutTensor));
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GString) header = build_header(model, path, outs, names, error);
  if (!header) return FALSE;
  WriteCtx ctx = {header, outs};
  return pq_write_atomically(path, write_body, &ctx, error);
}

int64_t pq_model_file_size(const PqModel *model) {
  g_autoptr(GArray) outs = g_array_new(FALSE, TRUE, sizeof(OutTensor));
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GString) header = build_header(model, "(model)", outs, names, NULL);
  if (!header) return -1;
  int64_t size = 8 + (int64_t)header->len;
  for (guint i = 0; i < outs->len; i++) size += (int64_t)g_array_index(outs, OutTensor, i).nbytes;
  return size;
}
