package postgres

import (
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/providers/internal/outboxsql"
)

// TestOutboxOptionsMirrorSharedOptions keeps OutboxOptions in step with the
// shared options that the other providers expose directly: every shared
// field exists here with the same type and is passed on by shared().
func TestOutboxOptionsMirrorSharedOptions(t *testing.T) {
	t.Parallel()
	sharedType := reflect.TypeFor[outboxsql.Options]()
	var opts OutboxOptions
	mine := reflect.ValueOf(&opts).Elem()
	samples := map[reflect.Type]reflect.Value{
		reflect.TypeFor[string]():           reflect.ValueOf("x.y"),
		reflect.TypeFor[int]():              reflect.ValueOf(7),
		reflect.TypeFor[func() time.Time](): reflect.ValueOf(time.Now),
		reflect.TypeFor[*slog.Logger]():     reflect.ValueOf(slog.Default()),
	}
	for i := range sharedType.NumField() {
		f := sharedType.Field(i)
		g := mine.FieldByName(f.Name)
		require.True(t, g.IsValid(), "OutboxOptions lacks %s", f.Name)
		require.Equal(t, f.Type, g.Type(), "OutboxOptions.%s", f.Name)
		sample, ok := samples[f.Type]
		require.True(t, ok, "no sample value for the type of %s (%v); extend the test", f.Name, f.Type)
		g.Set(sample)
	}
	got := reflect.ValueOf(opts.shared())
	for i := range sharedType.NumField() {
		f := sharedType.Field(i)
		want := mine.FieldByName(f.Name)
		if f.Type.Kind() == reflect.Func || f.Type.Kind() == reflect.Pointer {
			require.Equal(t, want.Pointer(), got.Field(i).Pointer(), "shared() passes on %s", f.Name)
			continue
		}
		require.Equal(t, want.Interface(), got.Field(i).Interface(), "shared() passes on %s", f.Name)
	}
}
