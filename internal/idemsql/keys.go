package idemsql

import (
	"encoding/json"
	"fmt"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

// scopeKey canonicalises an idempotency scope: a JSON object with sorted
// keys, or "" for an empty scope. Equal maps always give equal keys.
func scopeKey(scope map[string]string) (string, error) {
	if len(scope) == 0 {
		return "", nil
	}
	b, err := json.Marshal(scope) // encoding/json sorts map keys
	if err != nil {
		return "", fmt.Errorf("idempotency scope: %w", err)
	}
	return string(b), nil
}

// validateKey checks a key and returns its canonical scope key.
func validateKey(k ports.IdempotencyKey) (string, error) {
	if k.Namespace == "" {
		return "", check.Invalidf("idempotency namespace is empty; name the operation, e.g. \"orders.create\"")
	}
	if k.Key == "" {
		return "", check.Invalidf("idempotency key is empty")
	}
	if err := check.Length("idempotency namespace", k.Namespace); err != nil {
		return "", err
	}
	if err := check.Length("idempotency key", k.Key); err != nil {
		return "", err
	}
	sk, err := scopeKey(k.Scope)
	if err != nil {
		return "", err
	}
	if err := check.Length("idempotency scope", sk); err != nil {
		return "", err
	}
	return sk, nil
}

// storageKey derives the fixed-length (64 hex characters) unique key under
// which a (namespace, key, scope) record is stored: core.Fingerprint of the
// three, whose length prefixes keep ("ab","c") and ("a","bc") apart.
func storageKey(namespace, key, scope string) string {
	return core.Fingerprint([]byte(namespace), []byte(key), []byte(scope))
}
