package bus

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// watermillLogger routes watermill's logs to slog one level quieter: it logs every message
// received at Info, which is noise for an operator.
func watermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(l.With("component", "watermill"), map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug,
	})
}
