package relocate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// RelocateBundle relocates the images and invocation images of a CNAB bundle.json whose
// imageType is "docker", "oci" or unset (others are left as they are), each pinned to its
// contentDigest when it has one, and returns the bundle rewritten as duffle does: image is
// the relocated name, originalImage what image was (kept when the bundle already had one,
// so it stays the first origin), contentDigest the digest copied. Every other field is kept;
// the output is canonical JSON (sorted keys, no insignificant space). On a failure the
// bundle is nil and the mapping holds the images that were copied.
func RelocateBundle(ctx context.Context, name Namer, bundle []byte, opts ...Option) ([]byte, Mapping, error) {
	dec := json.NewDecoder(bytes.NewReader(bundle))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("reading bundle: %w", err)
	}
	entries, err := bundleImages(doc)
	if err != nil {
		return nil, nil, err
	}
	moves := make([]Move, len(entries))
	for i, e := range entries {
		image, _ := e["image"].(string)
		pin, _ := e["contentDigest"].(string)
		if moves[i], err = newMove(name, image, pin); err != nil {
			return nil, nil, fmt.Errorf("bundle: %w", err)
		}
	}
	if err := checkOneToOne(moves); err != nil {
		return nil, nil, fmt.Errorf("bundle: %w", err)
	}
	m, digests, err := copyAll(ctx, moves, opts)
	if err != nil {
		return nil, m, err
	}
	for i, e := range entries {
		if _, ok := e["originalImage"]; !ok {
			e["originalImage"] = moves[i].Original
		}
		e["image"] = dockerString(moves[i].Target)
		e["contentDigest"] = digests[i].String()
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, m, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), m, nil
}

// bundleImages returns the bundle's relocatable image entries: invocation images in order,
// then images by key.
func bundleImages(doc map[string]any) ([]map[string]any, error) {
	var entries []map[string]any
	add := func(where string, v any) error {
		e, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("bundle: %s is not an object", where)
		}
		if t, _ := e["imageType"].(string); t != "" && t != "oci" && t != "docker" {
			return nil
		}
		if s, ok := e["image"].(string); !ok || s == "" {
			return fmt.Errorf("bundle: %s has no image", where)
		}
		entries = append(entries, e)
		return nil
	}
	if v, ok := doc["invocationImages"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("bundle: invocationImages is not a list")
		}
		for i, e := range list {
			if err := add(fmt.Sprintf("invocationImages[%d]", i), e); err != nil {
				return nil, err
			}
		}
	}
	if v, ok := doc["images"]; ok {
		images, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("bundle: images is not an object")
		}
		keys := make([]string, 0, len(images))
		for k := range images {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := add(fmt.Sprintf("images[%q]", k), images[k]); err != nil {
				return nil, err
			}
		}
	}
	return entries, nil
}
