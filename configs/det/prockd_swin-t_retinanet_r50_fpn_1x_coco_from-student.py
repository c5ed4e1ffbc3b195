# Recipe: start the student from its own trained weights (fine-tune with
# distillation). `student_ckpt` takes a plain mmdet checkpoint of the
# student (keys `backbone.*`, `neck.*`, `bbox_head.*`) or a student-only
# checkpoint of ours, and loads it into the student after its init; the
# teacher and the prototype branch start as usual. Here: mmdet's own
# RetinaNet R50 1x (36.5 mAP), downloaded by mmengine when training starts.
_base_ = ['./prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py']

model = dict(student_ckpt='https://download.openmmlab.com/mmdetection/v2.0/'
             'retinanet/retinanet_r50_fpn_1x_coco/'
             'retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth')
# a fine-tune: a tenth of the learning rate
optim_wrapper = dict(optimizer=dict(lr=0.001))
