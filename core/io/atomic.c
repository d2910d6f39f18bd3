/* atomic.c — write a file through a temporary beside it, then rename: readers never see half a file. */
#include "../pq-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

gboolean pq_write_atomically(const char *path, PqWriteFunc func, gpointer user_data, GError **error) {
  g_autofree char *tmpl = g_strconcat(path, ".tmp-XXXXXX", NULL);
  int fd = g_mkstemp_full(tmpl, O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "%s: cannot create a file there: %s", path, g_strerror(e));
    return FALSE;
  }
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    close(fd);
    unlink(tmpl);
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "%s: %s", path, g_strerror(errno));
    return FALSE;
  }
  g_autoptr(GError) werr = NULL;
  gboolean ok = func(f, user_data, &werr);
  if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) {
    g_set_error(&werr, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "write failed: %s", g_strerror(errno));
    ok = FALSE;
  }
  if (fclose(f) != 0 && ok) {
    g_set_error(&werr, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "write failed: %s", g_strerror(errno));
    ok = FALSE;
  }
  if (ok && rename(tmpl, path) != 0) {
    g_set_error(&werr, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "cannot rename into place: %s", g_strerror(errno));
    ok = FALSE;
  }
  if (!ok) {
    unlink(tmpl);
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "%s: %s", path, werr->message);
  }
  return ok;
}

static gboolean write_text(FILE *f, gpointer data, GError **error) {
  const char *t = data;
  if (fwrite(t, 1, strlen(t), f) != strlen(t)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "write failed: %s", g_strerror(errno));
    return FALSE;
  }
  return TRUE;
}

gboolean pq_write_text_atomically(const char *path, const char *text, GError **error) {
  return pq_write_atomically(path, write_text, (gpointer)text, error);
}
