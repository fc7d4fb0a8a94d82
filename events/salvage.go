package events

import (
	"encoding/json"
	"unicode/utf8"
)

// Salvage recovers, from an event that failed validation or could not be handled, what a
// failure report needs: the job's ids (from the data, else from the CloudEvents extension
// attributes wishID and correlationID) and, where they are well-formed, the image as wished,
// the repository and the resolved image. ok is false when no wish id can be found: then
// nobody is waiting for a result that could be reported.
func Salvage(data []byte, wishID, correlationID, subject string) (job Job, img *Image, ok bool) {
	var loose struct {
		Job   json.RawMessage `json:"job"`
		Image json.RawMessage `json:"image"`
	}
	_ = json.Unmarshal(data, &loose)
	var j Job
	_ = json.Unmarshal(loose.Job, &j)
	job.WishID, job.CorrelationID = j.WishID, j.CorrelationID
	if !idRe.MatchString(job.WishID) {
		job.WishID = wishID
	}
	if !idRe.MatchString(job.CorrelationID) {
		job.CorrelationID = correlationID
	}
	if !idRe.MatchString(job.CorrelationID) {
		job.CorrelationID = job.WishID
	}
	if !idRe.MatchString(job.WishID) {
		return Job{}, nil, false
	}
	job.Image = j.Image
	if checkImageText("", job.Image, true) != nil {
		job.Image = subject
	}
	if checkImageText("", job.Image, true) != nil || !utf8.ValidString(job.Image) {
		job.Image = ""
	}
	if CheckRepo(j.CvmfsRepo) == nil {
		job.CvmfsRepo = j.CvmfsRepo
	}
	job.SubmittedAt = j.SubmittedAt
	if j.checkOutputs() == nil {
		// The notifier ends the wish by the outputs it asked for.
		job.Outputs, job.RelocatePrefix, job.RelocateNoFlatten = j.Outputs, j.RelocatePrefix, j.RelocateNoFlatten
		job.LazyImage, job.LazyFormat, job.LazyOCI, job.LazyReferrer, job.LazyPrioritized = j.LazyImage, j.LazyFormat, j.LazyOCI, j.LazyReferrer, j.LazyPrioritized
		job.ExportRemote, job.ExportCompress = j.ExportRemote, j.ExportCompress
	}
	var i Image
	if json.Unmarshal(loose.Image, &i) == nil && i.Validate() == nil {
		img = &i
	}
	return job, img, true
}
