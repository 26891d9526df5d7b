package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-multierror"
)

var errSyntax = errors.New("TOML syntax")

// decode fills cfg from a TOML document key by key, so that one wrong type or unknown key does not hide
// the next: every such problem is reported with its key path. Only a syntax error stops it early,
// since nothing after it can be read reliably.
func decode(data []byte, cfg *Config) error {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		return fmt.Errorf("%w: %w", errSyntax, err)
	}
	var errs *multierror.Error
	decodeTable(md, top, reflect.ValueOf(cfg).Elem(), "", &errs)
	return errs.ErrorOrNil()
}

// decodeTable decodes each key of table into the field of target whose toml tag names it.
func decodeTable(md toml.MetaData, table map[string]toml.Primitive, target reflect.Value, path string, errs **multierror.Error) {
	fields := map[string]reflect.Value{}
	t := target.Type()
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" {
			fields[tag] = target.Field(i)
		}
	}
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		keyPath := joinPath(path, key)
		field, ok := fields[key]
		if !ok {
			*errs = multierror.Append(*errs, fmt.Errorf("%s: unknown key", keyPath))
			continue
		}
		prim := table[key]
		switch {
		case field.Kind() == reflect.Struct && field.Type() != reflect.TypeOf(Duration{}):
			var sub map[string]toml.Primitive
			if err := md.PrimitiveDecode(prim, &sub); err != nil {
				*errs = multierror.Append(*errs, fmt.Errorf("%s: want a table: %s", keyPath, cleanTOMLError(err)))
				continue
			}
			decodeTable(md, sub, field, keyPath, errs)
		case field.Kind() == reflect.Slice && field.Type().Elem().Kind() == reflect.Struct:
			var items []map[string]toml.Primitive
			if err := md.PrimitiveDecode(prim, &items); err != nil {
				*errs = multierror.Append(*errs, fmt.Errorf("%s: want an array of tables ([[%s]]): %s", keyPath, key, cleanTOMLError(err)))
				continue
			}
			slice := reflect.MakeSlice(field.Type(), len(items), len(items))
			for i, item := range items {
				decodeTable(md, item, slice.Index(i), fmt.Sprintf("%s[%d]", keyPath, i), errs)
			}
			field.Set(slice)
		default:
			fresh := reflect.New(field.Type())
			if err := md.PrimitiveDecode(prim, fresh.Interface()); err != nil {
				*errs = multierror.Append(*errs, fmt.Errorf("%s: %s", keyPath, cleanTOMLError(err)))
				continue
			}
			field.Set(fresh.Elem())
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// cleanTOMLError drops the library's "toml: " prefix; the key path already says where.
func cleanTOMLError(err error) string {
	return strings.TrimPrefix(err.Error(), "toml: ")
}
