/* registry.c — discovers plugins (shared objects), validates their descriptors and keeps them loaded. */
#include "pq-private.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

G_DEFINE_QUARK(pq-registry-error-quark, pq_registry_error)

struct PqPlugin {
  char *path;
  const PqPluginDesc *desc;
  gboolean usable;
  char *unusable_reason;
};

typedef struct {
  char *path;
  char *reason;
} Rejected;

struct PqRegistry {
  GPtrArray *plugins;  /* PqPlugin* */
  GArray *rejected;    /* Rejected */
  GPtrArray *searched; /* char*, NULL-terminated on demand */
};

/* Whether a descriptor (of struct_size bytes) holds `field`. */
#define HAS_FIELD(ptr, type, field) (offsetof(type, field) + sizeof(((type *)0)->field) <= (ptr)->struct_size)

static void rejected_clear(gpointer p) {
  Rejected *r = p;
  g_free(r->path);
  g_free(r->reason);
}

static void plugin_free(gpointer p) {
  PqPlugin *pl = p;
  g_free(pl->path);
  g_free(pl->unusable_reason);
  g_free(pl);
}

PqRegistry *pq_registry_new(void) {
  PqRegistry *r = g_new0(PqRegistry, 1);
  r->plugins = g_ptr_array_new_with_free_func(plugin_free);
  r->rejected = g_array_new(FALSE, TRUE, sizeof(Rejected));
  g_array_set_clear_func(r->rejected, rejected_clear);
  r->searched = g_ptr_array_new_with_free_func(g_free);
  return r;
}

void pq_registry_free(PqRegistry *r) {
  if (!r) return;
  g_ptr_array_unref(r->plugins);
  g_array_unref(r->rejected);
  g_ptr_array_unref(r->searched);
  g_free(r);
}

static gboolean valid_name(const char *s) {
  if (!s || !s[0] || strlen(s) > 63) return FALSE;
  for (const char *p = s; *p; p++)
    if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) && *p != '_') return FALSE;
  return TRUE;
}

static gboolean reserved_null(void *const *reserved, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (reserved[i]) return FALSE;
  return TRUE;
}

#define REJECT(code, ...)                                                                                          \
  do {                                                                                                             \
    g_set_error(error, PQ_REGISTRY_ERROR, code, __VA_ARGS__);                                                      \
    return FALSE;                                                                                                  \
  } while (0)

/* Ops declared by loaded compressors: op name → kernel. Plugins are never unloaded, so neither are these. */
G_LOCK_DEFINE_STATIC(op_kernels);
static GHashTable *op_kernels;

const PqOpKernel *pq_op_kernel_find(const char *op) {
  G_LOCK(op_kernels);
  const PqOpKernel *k = op_kernels ? g_hash_table_lookup(op_kernels, op) : NULL;
  G_UNLOCK(op_kernels);
  return k;
}

static gboolean valid_name(const char *s);

static gboolean check_kernels(const PqCompressorVTable *v, GError **error) {
  if (!HAS_FIELD(v, PqCompressorVTable, n_kernels) || v->n_kernels == 0) return TRUE;
  if (!v->kernels) REJECT(PQ_REGISTRY_ERROR_INVALID, "compressor vtable: %zu kernels declared, the table is NULL", v->n_kernels);
  for (size_t i = 0; i < v->n_kernels; i++) {
    const PqOpKernel *k = &v->kernels[i];
    if (k->struct_size < offsetof(PqOpKernel, run) + sizeof(k->run)) REJECT(PQ_REGISTRY_ERROR_INVALID, "op kernel %zu: struct_size too small", i);
    if (!valid_name(k->op)) REJECT(PQ_REGISTRY_ERROR_INVALID, "op kernel %zu: op name must be 1-63 characters of [a-z0-9_]", i);
    if (pq_op_is_builtin(k->op)) REJECT(PQ_REGISTRY_ERROR_INVALID, "op kernel '%s': a built-in op cannot be redefined", k->op);
    if (!k->infer || !k->run) REJECT(PQ_REGISTRY_ERROR_INVALID, "op kernel '%s': infer and run are required", k->op);
    for (size_t j = 0; j < i; j++)
      if (!strcmp(v->kernels[j].op, k->op)) REJECT(PQ_REGISTRY_ERROR_DUPLICATE, "op kernel '%s' is declared twice in the table", k->op);
  }
  return TRUE;
}

/* The last step of accepting a compressor: its ops, checked against those of every plugin loaded in this
 * process and registered under one lock, so two threads loading two plugins that declare one op cannot
 * both win. The same plugin loaded again (by another registry) declares the very same kernels: accepted. */
static gboolean claim_kernels(const PqPluginDesc *d, GError **error) {
  if (d->kind != PQ_KIND_COMPRESSOR) return TRUE;
  const PqCompressorVTable *v = d->vtable;
  if (!HAS_FIELD(v, PqCompressorVTable, n_kernels) || v->n_kernels == 0) return TRUE;
  G_LOCK(op_kernels);
  if (!op_kernels) op_kernels = g_hash_table_new(g_str_hash, g_str_equal);
  for (size_t i = 0; i < v->n_kernels; i++) {
    const PqOpKernel *prev = g_hash_table_lookup(op_kernels, v->kernels[i].op);
    if (prev && prev != &v->kernels[i]) {
      G_UNLOCK(op_kernels);
      REJECT(PQ_REGISTRY_ERROR_DUPLICATE, "op '%s' is already declared by another plugin", v->kernels[i].op);
    }
  }
  for (size_t i = 0; i < v->n_kernels; i++) g_hash_table_insert(op_kernels, (gpointer)v->kernels[i].op, (gpointer)&v->kernels[i]);
  G_UNLOCK(op_kernels);
  return TRUE;
}

static gboolean check_vtable(const PqPluginDesc *d, GError **error) {
  const uint32_t vsize = *(const uint32_t *)d->vtable;
  switch (d->kind) {
  case PQ_KIND_COMPRESSOR: {
    const PqCompressorVTable *v = d->vtable;
    if (vsize < offsetof(PqCompressorVTable, compress) + sizeof(v->compress))
      REJECT(PQ_REGISTRY_ERROR_INVALID, "compressor vtable struct_size %u is too small", vsize);
    if (!v->compress) REJECT(PQ_REGISTRY_ERROR_INVALID, "compressor vtable: required function compress is NULL");
    if (HAS_FIELD(v, PqCompressorVTable, reserved) && !reserved_null(v->reserved, G_N_ELEMENTS(v->reserved)))
      REJECT(PQ_REGISTRY_ERROR_INVALID, "compressor vtable: reserved fields must be NULL");
    if (HAS_FIELD(v, PqCompressorVTable, flags) && (v->flags & ~PQ_COMPRESSOR_EXACT))
      REJECT(PQ_REGISTRY_ERROR_INVALID, "compressor vtable: unknown flags 0x%llx (this pquant knows PQ_COMPRESSOR_EXACT, 0x1)",
             (unsigned long long)v->flags);
    return check_kernels(v, error);
  }
  case PQ_KIND_BACKEND: {
    const PqBackendVTable *v = d->vtable;
    if (vsize < offsetof(PqBackendVTable, release) + sizeof(v->release))
      REJECT(PQ_REGISTRY_ERROR_INVALID, "backend vtable struct_size %u is too small", vsize);
    const char *missing = !v->supports_op ? "supports_op" : !v->prepare ? "prepare" : !v->run ? "run" : !v->release ? "release" : NULL;
    if (missing) REJECT(PQ_REGISTRY_ERROR_INVALID, "backend vtable: required function %s is NULL", missing);
    if (HAS_FIELD(v, PqBackendVTable, reserved) && !reserved_null(v->reserved, G_N_ELEMENTS(v->reserved)))
      REJECT(PQ_REGISTRY_ERROR_INVALID, "backend vtable: reserved fields must be NULL");
    return TRUE;
  }
  case PQ_KIND_PROBE: {
    const PqProbeVTable *v = d->vtable;
    if (vsize < offsetof(PqProbeVTable, observe) + sizeof(v->observe))
      REJECT(PQ_REGISTRY_ERROR_INVALID, "probe vtable struct_size %u is too small", vsize);
    if (!v->observe) REJECT(PQ_REGISTRY_ERROR_INVALID, "probe vtable: required function observe is NULL");
    if (HAS_FIELD(v, PqProbeVTable, reserved) && !reserved_null(v->reserved, G_N_ELEMENTS(v->reserved)))
      REJECT(PQ_REGISTRY_ERROR_INVALID, "probe vtable: reserved fields must be NULL");
    return TRUE;
  }
  }
  REJECT(PQ_REGISTRY_ERROR_INVALID, "unknown kind %u (1 compressor, 2 backend, 3 probe)", d->kind);
}

static gboolean check_desc(PqRegistry *r, const PqPluginDesc *d, GError **error) {
  if (d->struct_size < offsetof(PqPluginDesc, abi_minor) + sizeof(d->abi_minor))
    REJECT(PQ_REGISTRY_ERROR_INVALID, "descriptor struct_size %u is too small", d->struct_size);
  if (d->abi_major != PQ_ABI_MAJOR)
    REJECT(PQ_REGISTRY_ERROR_ABI, "built for ABI %u.%u, this pquant speaks ABI major %d only", d->abi_major, d->abi_minor,
           PQ_ABI_MAJOR);
  if (d->abi_minor > PQ_ABI_MINOR)
    REJECT(PQ_REGISTRY_ERROR_ABI, "built for ABI %u.%u, newer than this pquant's %d.%d: upgrade pquant", d->abi_major,
           d->abi_minor, PQ_ABI_MAJOR, PQ_ABI_MINOR);
  if (!HAS_FIELD(d, PqPluginDesc, usable_here))
    REJECT(PQ_REGISTRY_ERROR_INVALID, "descriptor struct_size %u is too small for ABI %u.%u", d->struct_size, d->abi_major,
           d->abi_minor);
  if (!valid_name(d->name)) REJECT(PQ_REGISTRY_ERROR_INVALID, "descriptor: name must be 1-63 characters of [a-z0-9_]");
  if (!d->version || !d->version[0]) REJECT(PQ_REGISTRY_ERROR_INVALID, "descriptor of '%s': version is missing", d->name);
  if (!d->description) REJECT(PQ_REGISTRY_ERROR_INVALID, "descriptor of '%s': description is missing", d->name);
  if (d->reserved0 || (HAS_FIELD(d, PqPluginDesc, reserved) && !reserved_null(d->reserved, G_N_ELEMENTS(d->reserved))))
    REJECT(PQ_REGISTRY_ERROR_INVALID, "descriptor of '%s': reserved fields must be NULL", d->name);
  if (!d->vtable) REJECT(PQ_REGISTRY_ERROR_INVALID, "descriptor of '%s': vtable is NULL", d->name);
  if (!check_vtable(d, error)) return FALSE;
  if (d->options_schema) {
    g_autoptr(GError) oerr = NULL;
    g_autoptr(PqOptions) o = pq_options_new(d->options_schema, d->name, &oerr);
    if (!o) REJECT(PQ_REGISTRY_ERROR_INVALID, "%s", oerr->message);
  }
  for (guint i = 0; i < r->plugins->len; i++) {
    PqPlugin *p = r->plugins->pdata[i];
    if (strcmp(p->desc->name, d->name) == 0)
      REJECT(PQ_REGISTRY_ERROR_DUPLICATE, "duplicate name '%s': already loaded from %s", d->name, p->path);
  }
  return claim_kernels(d, error); /* last: nothing may reject the plugin after its ops are registered */
}

static void add_rejected(PqRegistry *r, const char *path, const char *reason) {
  Rejected rj = {g_strdup(path), g_strdup(reason)};
  g_array_append_val(r->rejected, rj);
}

static PqPlugin *load_file(PqRegistry *r, const char *path, GError **error) {
  g_autofree char *real = realpath(path, NULL);
  if (!real) {
    g_set_error(error, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_OPEN, "cannot open: %s", g_strerror(errno));
    return NULL;
  }
  for (guint i = 0; i < r->plugins->len; i++) {
    PqPlugin *p = r->plugins->pdata[i];
    if (strcmp(p->path, real) == 0) return p; /* the same file seen twice */
  }
  if (g_file_test(real, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_OPEN, "is a folder, not a plugin");
    return NULL;
  }
  /* RTLD_LOCAL keeps one plugin's symbols from resolving another's; plugins are never unloaded. */
  void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    g_set_error(error, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_OPEN, "cannot load: %s", e ? e : "unknown dlopen error");
    return NULL;
  }
  dlerror();
  PqPluginQueryFunc query = (PqPluginQueryFunc)(uintptr_t)dlsym(h, PQ_PLUGIN_ENTRY_SYMBOL);
  if (!query) {
    g_set_error(error, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_NO_ENTRY,
                "not a pquant plugin: it does not export %s() (declare it with PQ_PLUGIN_EXPORT)", PQ_PLUGIN_ENTRY_SYMBOL);
    return NULL;
  }
  const PqPluginDesc *d = query();
  if (!d) {
    g_set_error(error, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_INVALID, "%s() returned NULL", PQ_PLUGIN_ENTRY_SYMBOL);
    return NULL;
  }
  if (!check_desc(r, d, error)) return NULL;
  PqPlugin *p = g_new0(PqPlugin, 1);
  p->path = g_steal_pointer(&real);
  p->desc = d;
  p->usable = TRUE;
  if (d->usable_here) {
    PqPluginError why = {sizeof why, 0, {0}};
    if (!d->usable_here(&why)) {
      p->usable = FALSE;
      why.message[sizeof why.message - 1] = 0;
      p->unusable_reason = g_strdup(why.message[0] ? why.message : "the plugin says it is not usable here");
    }
  }
  g_ptr_array_add(r->plugins, p);
  return p;
}

PqPlugin *pq_registry_load(PqRegistry *r, const char *path, GError **error) {
  g_return_val_if_fail(r && path, NULL);
  g_autoptr(GError) err = NULL;
  PqPlugin *p = load_file(r, path, &err);
  if (!p) {
    add_rejected(r, path, err->message);
    g_set_error(error, PQ_REGISTRY_ERROR, err->code, "plugin %s: %s", path, err->message);
  }
  return p;
}

static gint cmp_str(gconstpointer a, gconstpointer b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void scan_dir(PqRegistry *r, const char *dir, int depth) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  if (!d) return;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *n;
  while ((n = g_dir_read_name(d))) g_ptr_array_add(names, g_strdup(n));
  g_ptr_array_sort(names, cmp_str);
  for (guint i = 0; i < names->len; i++) {
    const char *name = names->pdata[i];
    g_autofree char *full = g_build_filename(dir, name, NULL);
    if (g_file_test(full, G_FILE_TEST_IS_DIR)) {
      /* meson keeps object files in NAME.p folders: nothing to load there */
      if (depth < 4 && !g_str_has_suffix(name, ".p") && name[0] != '.') scan_dir(r, full, depth + 1);
      continue;
    }
    if (!g_str_has_suffix(name, ".so")) continue;
    g_autoptr(GError) err = NULL;
    if (!load_file(r, full, &err)) add_rejected(r, full, err->message);
  }
}

void pq_registry_scan_dir(PqRegistry *r, const char *dir) {
  g_return_if_fail(r && dir);
  g_ptr_array_add(r->searched, g_strdup(dir));
  scan_dir(r, dir, 0);
}

/* Whether this program runs from pquant's build tree (uninstalled). */
static gboolean running_uninstalled(void) {
  g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
  g_autofree char *root = g_strconcat(PQ_BUILD_ROOT, "/", NULL);
  return exe && g_str_has_prefix(exe, root);
}

void pq_registry_scan_default(PqRegistry *r) {
  const char *env = g_getenv("PQ_PLUGIN_PATH");
  if (env && env[0]) {
    g_auto(GStrv) dirs = g_strsplit(env, G_SEARCHPATH_SEPARATOR_S, -1);
    for (char **d = dirs; *d; d++)
      if ((*d)[0]) pq_registry_scan_dir(r, *d);
  }
  pq_registry_scan_dir(r, running_uninstalled() ? PQ_BUILD_PLUGINDIR : PQ_PLUGINDIR);
}

guint pq_registry_n_plugins(const PqRegistry *r) { return r->plugins->len; }
PqPlugin *pq_registry_plugin(const PqRegistry *r, guint i) { return i < r->plugins->len ? r->plugins->pdata[i] : NULL; }
guint pq_registry_n_rejected(const PqRegistry *r) { return r->rejected->len; }
const char *pq_registry_rejected_path(const PqRegistry *r, guint i) { return g_array_index(r->rejected, Rejected, i).path; }
const char *pq_registry_rejected_reason(const PqRegistry *r, guint i) {
  return g_array_index(r->rejected, Rejected, i).reason;
}
const char *const *pq_registry_searched_dirs(const PqRegistry *r) {
  if (!r->searched->len || r->searched->pdata[r->searched->len - 1] != NULL) g_ptr_array_add(r->searched, NULL);
  return (const char *const *)r->searched->pdata;
}

PqPlugin *pq_registry_find(const PqRegistry *r, const char *name, PqPluginKind kind, GError **error) {
  GString *known = g_string_new(NULL);
  for (guint i = 0; i < r->plugins->len; i++) {
    PqPlugin *p = r->plugins->pdata[i];
    if (kind && p->desc->kind != (uint32_t)kind) continue;
    if (strcmp(p->desc->name, name) == 0) {
      g_string_free(known, TRUE);
      return p;
    }
    g_string_append_printf(known, "%s%s", known->len ? ", " : "", p->desc->name);
  }
  g_set_error(error, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_NOT_FOUND, "no %s plugin named '%s' (loaded: %s; see `pqrun plugins`)",
              kind ? pq_plugin_kind_name(kind) : "", name, known->len ? known->str : "none");
  g_string_free(known, TRUE);
  return NULL;
}

const char *pq_plugin_name(const PqPlugin *p) { return p->desc->name; }
const char *pq_plugin_version(const PqPlugin *p) { return p->desc->version; }
const char *pq_plugin_description(const PqPlugin *p) { return p->desc->description; }
const char *pq_plugin_path(const PqPlugin *p) { return p->path; }
PqPluginKind pq_plugin_kind(const PqPlugin *p) { return (PqPluginKind)p->desc->kind; }
const char *pq_plugin_options_schema(const PqPlugin *p) { return p->desc->options_schema; }
const PqPluginDesc *pq_plugin_desc(const PqPlugin *p) { return p->desc; }
gboolean pq_plugin_exact(const PqPlugin *p) {
  if (p->desc->kind != PQ_KIND_COMPRESSOR) return FALSE;
  const PqCompressorVTable *v = p->desc->vtable;
  return HAS_FIELD(v, PqCompressorVTable, flags) && (v->flags & PQ_COMPRESSOR_EXACT);
}
gboolean pq_plugin_usable(const PqPlugin *p, const char **reason) {
  if (reason) *reason = p->unusable_reason;
  return p->usable;
}
const char *pq_plugin_kind_name(PqPluginKind k) {
  switch (k) {
  case PQ_KIND_COMPRESSOR: return "compressor";
  case PQ_KIND_BACKEND: return "backend";
  case PQ_KIND_PROBE: return "probe";
  }
  return "unknown";
}
