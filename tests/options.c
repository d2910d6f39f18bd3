/* options.c — plugin option schemas: defaults, types, ranges, choices and unknown keys. */
#include "testutil.h"

#include <string.h>

static const char *schema =
    "{\"rank\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 4096, \"default\": 64},"
    " \"energy\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1},"
    " \"whiten\": {\"type\": \"boolean\", \"default\": false},"
    " \"scheme\": {\"type\": \"string\", \"enum\": [\"per_tensor\", \"per_channel\"], \"default\": \"per_channel\"}}";

static void test_defaults(void) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqOptions) o = pq_options_new(schema, "low_rank", &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_options_get_int(o, "rank", -1), ==, 64);
  g_assert_false(pq_options_has(o, "energy"));
  g_assert_cmpfloat(pq_options_get_float(o, "energy", 0.5), ==, 0.5);
  g_assert_false(pq_options_get_bool(o, "whiten", 1));
  g_assert_cmpstr(pq_options_get_string(o, "scheme", NULL), ==, "per_channel");
  /* a default is set but not given; a value set is given, even one equal to the default */
  g_assert_true(pq_options_has(o, "rank"));
  g_assert_false(pq_options_given(o, "rank"));
  g_assert_false(pq_options_given(o, "energy"));
  g_assert_false(pq_options_given(o, "bits"));
  g_assert_true(pq_options_set(o, "scheme", "per_channel", &err));
  g_assert_true(pq_options_given(o, "scheme"));
  g_assert_false(pq_options_set(o, "rank", "0", NULL)); /* refused: still not given */
  g_assert_false(pq_options_given(o, "rank"));
  g_assert_null(pq_options_later_stage(o, "quant", NULL)); /* in no chain */
  g_assert_true(pq_options_set(o, "rank", "32", &err));
  g_assert_true(pq_options_set(o, "energy", "0.9", &err));
  g_assert_true(pq_options_set(o, "whiten", "true", &err));
  g_assert_no_error(err);
  g_assert_cmpint(pq_options_get_int(o, "rank", -1), ==, 32);
  g_assert_cmpfloat(pq_options_get_float(o, "energy", 0), ==, 0.9);
  g_assert_true(pq_options_get_bool(o, "whiten", 0));
  g_auto(GStrv) choices = pq_options_choices(o, "scheme");
  g_assert_nonnull(choices);
  g_assert_cmpuint(g_strv_length(choices), ==, 2);
  g_assert_cmpstr(choices[0], ==, "per_tensor");
  g_assert_cmpstr(choices[1], ==, "per_channel");
  g_assert_null(pq_options_choices(o, "rank"));  /* not a string of choices */
  g_assert_null(pq_options_choices(o, "bits"));  /* unknown */
  g_assert_null(pq_options_choices(NULL, "scheme"));
  g_autofree char *summary = pq_options_schema_summary(schema);
  g_assert_nonnull(strstr(summary, "rank (integer, 1..4096, default 64)"));
}

static void test_bad_values(void) {
  g_autoptr(PqOptions) o = pq_options_new(schema, "low_rank", NULL);
  const struct {
    const char *key, *value, *needle;
    int code;
  } cases[] = {
      {"rank", "0", "out of range [1, 4096]", PQ_OPTIONS_ERROR_VALUE},
      {"rank", "5000", "out of range", PQ_OPTIONS_ERROR_VALUE},
      {"rank", "3.5", "must be an integer", PQ_OPTIONS_ERROR_VALUE},
      {"rank", "", "must be an integer", PQ_OPTIONS_ERROR_VALUE},
      {"energy", "nan", "must be a number", PQ_OPTIONS_ERROR_VALUE},
      {"energy", "1.5", "out of range", PQ_OPTIONS_ERROR_VALUE},
      {"whiten", "maybe", "true or false", PQ_OPTIONS_ERROR_VALUE},
      {"scheme", "per_group", "must be one of per_tensor, per_channel", PQ_OPTIONS_ERROR_VALUE},
      {"bits", "8", "unknown option \"bits\" (known: rank, energy, whiten, scheme)", PQ_OPTIONS_ERROR_UNKNOWN_KEY},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) err = NULL;
    g_assert_false(pq_options_set(o, cases[i].key, cases[i].value, &err));
    g_assert_error(err, PQ_OPTIONS_ERROR, cases[i].code);
    g_assert_nonnull(strstr(err->message, "low_rank"));
    if (!strstr(err->message, cases[i].needle)) g_error("'%s' lacks '%s'", err->message, cases[i].needle);
  }
  g_assert_cmpint(pq_options_get_int(o, "rank", -1), ==, 64); /* failed sets change nothing */
}

static void test_bad_schema(void) {
  const char *bad[] = {"[1]", "{\"a\": 1}", "{\"a\": {\"type\": \"int\"}}", "{\"a\": {\"type\": \"integer\", \"default\": \"x\"}}",
                       "{\"a\": {\"type\": \"integer\", \"minimum\": 2, \"default\": 1}}", "not json"};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) err = NULL;
    g_assert_null(pq_options_new(bad[i], "p", &err));
    g_assert_error(err, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_SCHEMA);
  }
  g_autoptr(PqOptions) none = pq_options_new(NULL, "p", NULL);
  g_assert_nonnull(none);
  g_autoptr(GError) err = NULL;
  g_assert_false(pq_options_set(none, "x", "1", &err));
  g_assert_error(err, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_UNKNOWN_KEY);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/options/defaults", test_defaults);
  g_test_add_func("/options/bad-values", test_bad_values);
  g_test_add_func("/options/bad-schema", test_bad_schema);
  return g_test_run();
}
