package notifier

import (
	"context"
	"fmt"

	"flatbed.dev/events"
	n "flatbed.dev/pkg/notification"
)

// podmanLines writes DUCC's lines for an image listed in the podman store, as its
// CreatePodmanImageStore writes them: start_podman_ingestion with the image's name, then
// end_podman_ingestion with the seconds it took (no id and no status: DUCC writes none).
func (s *Service) podmanLines(ctx context.Context, in events.ImageFlattened) error {
	if !in.Podman {
		return nil
	}
	if err := s.line(ctx, map[string]string{n.FieldAction: n.ActionStartPodmanIngestion, n.FieldImage: in.Image.Name}); err != nil {
		return err
	}
	return s.line(ctx, map[string]string{n.FieldAction: n.ActionEndPodmanIngestion, n.FieldImage: in.Image.Name,
		n.FieldElapsed: fmt.Sprintf("%f", in.PodmanSeconds)})
}
