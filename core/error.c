/* error.c — error quarks and the one place where plugin errors become GErrors. */
#include "pq-private.h"

#include <stdarg.h>
#include <stdio.h>

G_DEFINE_QUARK(pq-plugin-call-error-quark, pq_plugin_call_error)

void pq_plugin_error_set(PqPluginError *error, PqStatus code, const char *format, ...) {
  if (!error) return;
  va_list ap;
  va_start(ap, format);
  error->code = code;
  vsnprintf(error->message, sizeof error->message, format, ap);
  va_end(ap);
}

PqStatus pq_plugin_error_in_layer(PqPluginError *error, const char *layer) {
  if (!error) return PQ_ERR_INTERNAL;
  PqStatus code = error->code != PQ_OK ? (PqStatus)error->code : PQ_ERR_INTERNAL;
  g_autofree char *prefix = g_strdup_printf("layer '%s': ", layer);
  if (!g_str_has_prefix(error->message, prefix)) {
    g_autofree char *msg = g_strconcat(prefix, error->message, NULL);
    pq_plugin_error_set(error, code, "%s", msg);
  }
  error->code = code;
  return code;
}

void pq_propagate_plugin_error(GError **error, const PqPluginError *perr, const char *who) {
  int code = perr ? perr->code : PQ_ERR_INTERNAL;
  char msg[sizeof perr->message + 1];
  g_strlcpy(msg, perr && perr->message[0] ? perr->message : "failed without saying why", sizeof msg);
  if (!g_utf8_validate(msg, -1, NULL)) g_strlcpy(msg, "(message is not valid UTF-8)", sizeof msg);
  g_set_error(error, PQ_PLUGIN_CALL_ERROR, code == PQ_OK ? PQ_ERR_INTERNAL : code, "%s: %s", who, msg);
}
