"""The public utilities contract: every name of the API table, re-exported from its domain module.

Nothing is implemented here; each block below imports from the module that owns the concept. The last
block adds the other names SuperGradients 3.1 code imports from its utilities (see
docs/migrating-from-super-gradients.md).
"""

# --- nn -------------------------------------------------------------------------------------------
from trainwright.nn.activations import get_builtin_activation_type

# --- ops: boxes, targets, NMS ---------------------------------------------------------------------
from trainwright.ops.boxes import (
    adjust_box_anns,
    batch_distance2bbox,
    box_iou,
    calc_bbox_iou_matrix,
    calculate_bbox_iou_matrix,
    compute_box_area,
    convert_cxcywh_bbox_to_xyxy,
    crowd_ioa,
    cxcywh2xyxy,
    xyxy2cxcywh,
)
from trainwright.ops.nms import NMS_Type, matrix_non_max_suppression, non_max_suppression
from trainwright.ops.targets import DetectionTargetsFormat, get_cls_posx_in_target

# --- config ---------------------------------------------------------------------------------------
from trainwright.config import (
    AccessCounterMixin,
    ConfigInspector,
    HpmStruct,
    UnusedConfigParamException,
    raise_if_unused_params,
    warn_if_unused_params,
)

# --- deprecation ----------------------------------------------------------------------------------
from trainwright.deprecation import wrap_with_warning

# --- checkpoints ----------------------------------------------------------------------------------
from trainwright.checkpoints import (
    MissingPretrainedWeightsException,
    StrictLoad,
    adapt_state_dict_to_fit_model_layer_names,
    adaptive_load_state_dict,
    copy_ckpt_to_local_folder,
    load_checkpoint_to_model,
    load_pretrained_weights,
    load_pretrained_weights_local,
    raise_informative_runtime_error,
    read_ckpt_state_dict,
    transfer_weights,
)

# --- distributed ----------------------------------------------------------------------------------
from trainwright.distributed import (
    DDPNotSetupException,
    compute_precise_bn_stats,
    distributed_all_reduce_tensor_average,
    get_gpu_mem_utilization,
    get_local_rank,
    get_world_size,
    initialize_ddp,
    reduce_results_tuple_for_ddp,
    restart_script_with_ddp,
)

# --- callbacks: base ------------------------------------------------------------------------------
from trainwright.callbacks.base import (
    Callback,
    CallbackHandler,
    ContextSgMethods,
    Phase,
    PhaseCallback,
    PhaseContext,
)

# --- callbacks: LR schedules ----------------------------------------------------------------------
from trainwright.callbacks.lr import (
    BatchStepLinearWarmupLRCallback,
    CosineLRCallback,
    EpochStepWarmupLRCallback,
    ExponentialLRCallback,
    FunctionLRCallback,
    IllegalLRSchedulerMetric,
    LinearStepWarmupLRCallback,
    LRCallbackBase,
    LRSchedulerCallback,
    PolyLRCallback,
    StepLRCallback,
)

# --- callbacks: testing helpers -------------------------------------------------------------------
from trainwright.callbacks.testing import PhaseContextTestCallback, TestLRCallback

# --- callbacks: stage switch ----------------------------------------------------------------------
from trainwright.callbacks.stage_switch import TrainingStageSwitchCallbackBase, YoloXTrainingStageSwitchCallback
from trainwright.callbacks.ppyoloe_stage_switch import PPYoloETrainingStageSwitchCallback

# --- callbacks: visualisation ---------------------------------------------------------------------
from trainwright.callbacks.visualization import DetectionVisualizationCallback
from trainwright.callbacks.segmentation_visualization import BinarySegmentationVisualizationCallback

# --- callbacks: results ---------------------------------------------------------------------------
from trainwright.callbacks.results import RoboflowResultCallback

# --- callbacks: export and upload -----------------------------------------------------------------
from trainwright.callbacks.export import ModelConversionCheckCallback
from trainwright.callbacks.upload import DeciLabUploadCallback

# --- models ---------------------------------------------------------------------------------------
from trainwright.models.detection.anchors import Anchors
from trainwright.models.detection.postprocess import DetectionPostPredictionCallback

# --- data -----------------------------------------------------------------------------------------
from trainwright.data.collate import (
    CrowdDetectionCollateFN,
    CrowdDetectionPPYoloECollateFN,
    DetectionCollateFN,
    PPYoloECollateFN,
)
from trainwright.data.transforms.mosaic import get_mosaic_coordinate

# --- metrics --------------------------------------------------------------------------------------
from trainwright.metrics.detection import (
    DetectionMetrics,
    compute_detection_matching,
    compute_detection_metrics,
    compute_detection_metrics_per_cls,
    compute_img_detection_matching,
    get_top_k_idx_per_cls,
)

# --- visualisation --------------------------------------------------------------------------------
from trainwright.visualization.detection import DetectionVisualization, undo_image_preprocessing

# --- SuperGradients 3.1 compatibility: the other names its code imports ----------------------------------
from trainwright.callbacks.early_stopping import EarlyStop
from trainwright.callbacks.multiscale import DetectionMultiscalePrePredictionCallback, MultiscalePrePredictionCallback
from trainwright.config import AccessCounterDict, AccessCounterHpmStruct
from trainwright.nn.param_lookup import get_param, recursive_override
from trainwright.logging.meters import AverageMeter, Timer
from trainwright.metrics.iou_threshold import IouThreshold
from trainwright.models.detection.yolox_fast_loss import YoloXFastDetectionLoss
from trainwright.nn.environment import random_seed, torch_version_is_greater_or_equal
from trainwright.nn.models import WrappedModel, check_models_have_same_weights
from trainwright.nn.tensors import convert_to_tensor, tensor_container_to_device
