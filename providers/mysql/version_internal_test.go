package mysql

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckServerVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		ok      bool
	}{
		{"8.0.36", true},
		{"8.4.2", true},
		{"9.1.0", true},
		{"8.0.36-0ubuntu0.22.04.1", true},
		{"5.7.44", false},
		{"5.7.44-log", false},
		{"10.6.18-MariaDB", true},
		{"10.11.19-MariaDB-0+deb12u1", true},
		{"11.4.2-MariaDB-ubu2404", true},
		{"5.5.5-10.11.6-MariaDB", true},
		{"10.5.25-MariaDB", false},
		{"10.3.39-MariaDB-0+deb10u1", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		err := checkServerVersion(tt.version)
		if tt.ok {
			require.NoError(t, err, tt.version)
		} else {
			require.Error(t, err, tt.version)
		}
	}
}
